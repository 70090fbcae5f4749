"""Colour drift control between chained segments (``color_match: anchor | previous | none``).

Each generated segment starts from a given frame (the start image, or the previous segment's
last frame) and tends to drift in colour as it goes: warmer, more saturated, darker. Chained
naively, every segment starts from the drifted end of the one before, so the drift compounds.
`match_segment` corrects a segment right after it is generated, before it is stored and handed
on:

1. Statistics: mean and 3x3 covariance in CIELAB (perceptual: L is lightness, a/b are
   colour-opponent axes, so the transform moves perceptual properties without the hue twists of
   an RGB gain), of the segment's last frame (or of its middle frame when the end is pinned to a
   user image), and of the reference frame (the anchor: the shot's first start image; or, for
   ``previous``, the segment's own first frame).
2. Transform: the linear Monge-Kantorovich transfer x -> A(x - m_seg) + m_ref, the linear map
   that gives the reference's mean and covariance while moving colours least. Unlike a
   per-channel mean/std (Reinhard) transfer it also restores the correlations between
   channels that a cast changes (a warm cast raises a* and b* together with L), which a
   per-channel transfer leaves behind to compound segment after segment (measured in
   tests/perf/bench_chain.py: 0.37 vs 0.7 CIEDE2000 per segment). A's eigenvalues are clamped
   to [0.5, 2] (a near-flat channel is not stretched: noise would explode).
3. Progressive application: frame t gets the fraction w_t of the transform (linear between the
   identity and the full transfer, in Lab): w_t = strength·t/(T-1), so frame 0 is untouched (it
   IS the start image / previous last frame: a change there would be a visible step) and the
   last frame gets the full correction, i.e. the next segment starts from a frame whose colours
   match the reference. With a pinned end image, w_t = strength·sin(πt/(T-1)): both ends stay
   exact and the middle, where the drift is, is corrected.
4. Frames whose weight is 0 are returned bit for bit (never round-tripped through Lab).

Drift is measured in the CIEDE2000 colour difference (Sharma, Wu and Dalal 2005), the
benchmark's figure of merit: tests/helpers/color_metrics.py, from colour-science (a `dev` extra).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["SCALE_LIMITS", "lab", "lab_moments", "lab_stats", "match_segment"]

# Clamp of the std ratio: a segment whose contrast collapsed is stretched at most 2x, one whose
# contrast blew up squeezed at most 2x; beyond that the "drift" is content, not colour.
SCALE_LIMITS = (0.5, 2.0)
# Lab std below which a channel counts as flat (a grey frame's a/b) and keeps scale 1.
_MIN_STD = 1.0
# Statistics are computed on about this many pixels (a regular subsample: keeps the std of the
# content, unlike a downscale which would smooth it).
_STATS_PIXELS = 1 << 16


def _check_rgb(image, name: str, ndim: int | tuple[int, ...] = 3) -> np.ndarray:
    a = np.asarray(image)
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if a.dtype != np.uint8 or a.ndim not in dims or a.shape[-1] != 3:
        want = " or ".join({3: "(H, W, 3)", 4: "(T, H, W, 3)"}[d] for d in dims)
        raise ValueError(f"{name} must be uint8 RGB of shape {want}, got dtype {a.dtype} "
                         f"shape {a.shape}")
    return a


def lab(image_or_frames: np.ndarray) -> np.ndarray:
    """uint8 RGB image (H, W, 3) or frames (T, H, W, 3) -> float32 CIELAB (L 0..100, a/b about
    -128..127), via OpenCV on float32 RGB in 0..1 (sRGB, D65)."""
    a = _check_rgb(image_or_frames, "lab input", (3, 4))
    flat = np.ascontiguousarray(a.reshape(-1, a.shape[-2], 3))
    out = cv2.cvtColor(flat.astype(np.float32) * np.float32(1.0 / 255.0), cv2.COLOR_RGB2Lab)
    return out.reshape(a.shape)


def _from_lab(lab_image: np.ndarray) -> np.ndarray:
    rgb = cv2.cvtColor(lab_image, cv2.COLOR_Lab2RGB)
    return np.clip(rgb * np.float32(255.0) + np.float32(0.5), 0, 255).astype(np.uint8)


def _lab_samples(image: np.ndarray) -> np.ndarray:
    """Lab values (N, 3), float64, of a regular subsample of about 65k pixels of one uint8
    RGB image."""
    image = _check_rgb(image, "image")
    h, w = image.shape[:2]
    step = max(1, int(np.sqrt(h * w / _STATS_PIXELS)))
    return lab(np.ascontiguousarray(image[::step, ::step])).reshape(-1, 3).astype(np.float64)


def lab_stats(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel Lab mean and standard deviation (float64, shape (3,)) of one uint8 RGB
    image, from a regular subsample of about 65k pixels."""
    values = _lab_samples(image)
    return values.mean(axis=0), values.std(axis=0)


def lab_moments(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lab mean (3,) and covariance (3, 3), float64, of one uint8 RGB image (subsampled like
    `lab_stats`). A flat channel gets a variance floor of _MIN_STD², so the matrix inverts."""
    values = _lab_samples(image)
    cov = np.cov(values.T) if len(values) > 1 else np.zeros((3, 3))
    return values.mean(axis=0), cov + np.eye(3) * _MIN_STD ** 2 * 1e-3


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 1e-12, None))) @ vectors.T


def _transfer(src: tuple[np.ndarray, np.ndarray], ref: tuple[np.ndarray, np.ndarray]):
    """Matrix A and offset b of the full Monge-Kantorovich transfer src -> ref: y = A x + b."""
    (m_s, c_s), (m_r, c_r) = src, ref
    flat = np.diag(c_s) < _MIN_STD ** 2
    root = _sqrtm(c_s)
    inverse = np.linalg.inv(root)
    a = inverse @ _sqrtm(root @ c_r @ root) @ inverse
    # Clamp the stretch (A is symmetric: clamp its eigenvalues), and keep flat channels as they
    # are: their "spread" is noise.
    values, vectors = np.linalg.eigh((a + a.T) / 2)
    a = (vectors * np.clip(values, *SCALE_LIMITS)) @ vectors.T
    a[flat, :] = 0.0
    a[:, flat] = 0.0
    a[flat, flat] = 1.0
    return a, m_r - a @ m_s


def match_segment(frames: np.ndarray, reference: np.ndarray, strength: float = 1.0,
                  pin_end: bool = False) -> np.ndarray:
    """Colour-match a segment to ``reference``, progressively (see the module docstring).

    ``frames``: uint8 (T, H, W, 3); ``reference``: uint8 (H', W', 3) (any size: only its
    statistics are used). Returns a new uint8 array of the frames' shape. Frame 0 is always
    bit-exact; with ``pin_end`` the last frame too. ``strength`` in [0, 1] scales every frame's
    weight (0: the input comes back unchanged).
    """
    frames = _check_rgb(frames, "segment frames", 4)
    reference = _check_rgb(reference, "reference frame")
    strength = float(strength)
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"colour match strength must be in [0, 1], got {strength}")
    t_count = frames.shape[0]
    out = frames.copy()
    if t_count < 2 or strength == 0.0:
        return out
    t = np.arange(t_count, dtype=np.float64) / (t_count - 1)
    if pin_end:
        weights = strength * np.sin(np.pi * t)
        weights[-1] = 0.0  # sin(π) is 1e-16, not 0: the end image must stay exact
        source = frames[t_count // 2]
    else:
        weights = strength * t
        source = frames[-1]
    matrix, offset = _transfer(lab_moments(source), lab_moments(reference))
    identity = np.eye(3)
    for i, wt in enumerate(weights):
        if wt <= 0.0:
            continue
        # x + w·((A x + b) - x) = (I + w(A - I)) x + w·b
        gain = (identity + wt * (matrix - identity)).T.astype(np.float32)
        shift = (wt * offset).astype(np.float32)
        values = lab(frames[i])
        out[i] = _from_lab((values.reshape(-1, 3) @ gain + shift).reshape(values.shape))
    return out

"""Motion-guided join of two overlapping segments (chain mode ``overlap``).

With ``chain: {mode: overlap, overlap: K}`` the next segment is generated so that its first K
frames (``head``) cover the same instants as the previous segment's last K frames (``tail``).
The two renderings of those instants never agree exactly: the new segment starts from slightly
different noise, so the same content sits a few pixels off, a little brighter, moving a little
differently. A hard cut there shows a jump; a plain crossfade shows two half-transparent copies
(ghosting) for K frames. `join_overlap` hides the hand-over like this:

1. Progressive falloff weights w_j (`falloff_weights`): the head's share of overlap frame j,
   0 at the first frame, 1 at the last, rising over a centred window of ``blend·K`` frames
   along the curve t^g / (t^g + (1-t)^g), g = 1 + 2·step_gain. Flat ends keep the first and
   last overlap frames exactly the tail's and the head's, so both outer sides of the join
   continue their own segment without any step.
2. Motion analysis per overlap frame: dense DIS flow tail_j -> head_j and head_j -> tail_j at a
   reduced working size (short side <= 160 px: the seam offsets are smooth, low-frequency
   fields, and the flow costs a fraction of full size), then a per-pixel confidence in [0, 1]
   from forward-backward consistency and a photometric check on high-passed gray (so a global
   brightness difference between the renderings does not read as a mismatch).
3. Trajectory model: the tail->head displacement d(j) is fitted per working pixel as
   d0 + v·s + a·s² (s: frame index rescaled to [-1, 1]; constant offset, drift, acceleration)
   by confidence-weighted least squares over all K measurements, with a small ridge that pulls
   poorly measured pixels towards the simpler (constant) model. Each frame then uses
   c_j·measured + (1-c_j)·predicted, and its confidence becomes the best confidence among the
   measured frames, decayed by exp(-distance/_DECAY_FRAMES) with the distance in frames: one
   bad frame (a flash, a blurred frame) borrows the motion of its neighbours instead of warping
   by garbage, but a prediction far from any reliable measurement is not trusted.
   The tail's own motion (tail_j -> tail_j+1) is not used: tail_j and head_j show the same
   instant, so scene motion cancels out of d(j); only the disagreement between the renderings
   is left, which is what the join has to remove.
4. Morph: tail_j is pushed w_j of the way along d towards head_j, head_j pulled back (1-w_j) of
   the way, and the two are mixed with weight w_j: the contents meet in the middle instead of
   showing twice. (Backward maps read d at the output pixel, exact for the smooth displacement
   fields a seam has; the field is lightly blurred for that reason.)
5. Per-pixel share of the morph = Gaussian spatial mask (centred, sigma = mask_sigma × frame
   size per axis) × confidence × motion_weight; the rest of the pixel is the plain crossfade
   with the same w_j. Borders, where flow is least reliable (content entering or leaving the
   frame), thus lean on the crossfade.
6. If the mean measured confidence is below MIN_CONFIDENCE (unrelated content, noise: the motion
   analysis failed), the join is the plain crossfade with w_j, and the report says so.
7. A frame pair that is identical, and frames whose weight is exactly 0 or 1, come back as the
   tail's / head's frame bit for bit (no resampling).

`seam_score` measures what the join is for: the frame-difference spike at a boundary relative
to the typical frame difference of the sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from stages.post.interpolate import backward_warp, gray, optical_flow

__all__ = [
    "MIN_CONFIDENCE",
    "PRESETS",
    "JoinReport",
    "OverlapParams",
    "falloff_weights",
    "join_overlap",
    "seam_ratios",
    "seam_score",
    "seam_window_score",
]


@dataclass(frozen=True)
class OverlapParams:
    """How two overlapping segments are joined (see the module docstring for the steps)."""

    overlap: int = 16  # K: frames shared by the two segments (the planner generates them)
    blend: float = 0.8  # fraction of the overlap over which the hand-over happens (centred)
    motion_weight: float = 0.3  # max share of the motion-compensated morph per pixel
    mask_sigma: float = 0.35  # Gaussian spatial mask width, fraction of the frame size
    step_gain: float = 0.5  # steepness of the falloff curve (0 = linear ramp)

    def __post_init__(self):
        problems = []
        if isinstance(self.overlap, bool) or not isinstance(self.overlap, (int, np.integer)) \
                or self.overlap < 1:
            problems.append(f"overlap must be a whole number of frames >= 1, got {self.overlap!r}")
        for name, lo, hi in (("blend", 0.0, 1.0), ("motion_weight", 0.0, 1.0),
                             ("step_gain", 0.0, 5.0)):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and lo <= float(value) <= hi):
                problems.append(f"{name} must be a number in [{lo:g}, {hi:g}], got {value!r}")
        if not (isinstance(self.mask_sigma, (int, float)) and 0.0 < float(self.mask_sigma) <= 10):
            problems.append(f"mask_sigma must be a number in (0, 10], got {self.mask_sigma!r}")
        if problems:
            raise ValueError("invalid overlap join parameters: " + "; ".join(problems))


PRESETS: dict[str, OverlapParams] = {
    # Generic content: a 16-frame overlap (1 s at 16 fps) is long enough that a hand-over over
    # 80% of it (~13 frames) is slower than the eye tracks a dissolve, and leaves the first and
    # last ~1.5 frames exactly one segment's. A 30% morph share removes most of the ghost
    # contrast while a wrong flow can only ever tint 30% of a pixel.
    "standard": OverlapParams(),
    # Fast motion: the renderings disagree more (larger offsets), so a longer overlap spreads
    # the correction over more frames (24 = 1.5 s) and the hand-over uses 90% of it; the morph
    # counts more (40%) because ghosting of fast content is the most visible artefact; a wider
    # mask (0.45) because moving content reaches the frame edges; a steeper curve (0.6) keeps
    # the two-image middle short.
    "fast_motion": OverlapParams(overlap=24, blend=0.9, motion_weight=0.4, mask_sigma=0.45,
                                 step_gain=0.6),
    # Static or slow scenes: little to align, so a short overlap (8 frames, cheaper to generate)
    # and a short, gentle (0.3: near-linear) hand-over over 60% of it; the morph share stays low
    # (20%) and confined to the centre (0.25) since flow on nearly still content is mostly noise.
    "static": OverlapParams(overlap=8, blend=0.6, motion_weight=0.2, mask_sigma=0.25,
                            step_gain=0.3),
}

# Mean measured confidence below which the motion analysis counts as failed (step 6). Measured
# on synthetic textured motion: matched renderings offset by 5-12 px score 0.87-0.96 (0.91 with
# a +40 brightness step between them, ~0.55 when a third of the frame is empty border);
# unrelated textures score ~0.14, independent noise ~0.00.
MIN_CONFIDENCE = 0.3


@dataclass(frozen=True)
class JoinReport:
    method: str  # "motion" or "crossfade"
    confidence: float  # mean measured motion confidence, 0..1
    warning: str | None = None  # set when the join fell back to a crossfade


# Flow runs with the short side scaled to at most this (step 2).
_WORK_SIDE = 160
_FLOW_QUALITY = "medium"
# Forward-backward tolerance (squared px): grows with the motion, plus half a pixel of slack.
_FB_REL = 0.05
_FB_ABS = 0.5
# High-pass for the photometric check (working px) and the residual that counts as a mismatch.
_HIGHPASS_SIGMA = 3.0
_PHOTO_SIGMA = 14.0
# Ridge of the trajectory fit on (constant, velocity, acceleration): a frame of full confidence
# weighs 1, so these only matter where almost nothing was measured.
_RIDGE = np.array([1e-4, 1e-3, 1e-2], np.float64)
# Frames over which a prediction's confidence falls by a factor e from its nearest measurement.
_DECAY_FRAMES = 3.0
# The displacement field is blurred by this fraction of the working short side (step 4).
_FLOW_SMOOTH = 0.01


def falloff_weights(k: int, params: OverlapParams = OverlapParams()) -> np.ndarray:
    """Head weight of each of the ``k`` overlap frames (float64, non-decreasing, in [0, 1]).

    Frame j sits at u = j/(k-1); the weight rises over the centred window
    [0.5 - blend/2, 0.5 + blend/2] as t^g / (t^g + (1-t)^g), t the position in the window and
    g = 1 + 2·step_gain; before the window it is 0, after it 1. blend = 0 is a hard cut in the
    middle. A single overlap frame gets 0.5 (1 with blend = 0).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"overlap length must be a whole number >= 1, got {k!r}")
    u = np.array([0.5]) if k == 1 else np.arange(k, dtype=np.float64) / (k - 1)
    if params.blend <= 0:
        return (u >= 0.5).astype(np.float64)
    t = np.clip((u - (0.5 - params.blend / 2)) / params.blend, 0.0, 1.0)
    g = 1.0 + 2.0 * params.step_gain
    a, b = t**g, (1.0 - t) ** g
    return a / (a + b)


def _check_clips(tail, head) -> tuple[np.ndarray, np.ndarray]:
    tail = np.asarray(tail)
    head = np.asarray(head)
    for name, a in (("tail", tail), ("head", head)):
        if a.dtype != np.uint8 or a.ndim != 4 or a.shape[-1] != 3:
            raise ValueError(f"overlap join: {name} must be uint8 frames of shape (K, H, W, 3), "
                             f"got dtype {a.dtype} shape {a.shape}")
    if tail.shape != head.shape:
        raise ValueError(f"overlap join: tail and head must have the same shape, got tail "
                         f"{tail.shape} and head {head.shape} (both segments must be rendered "
                         f"at one resolution and share K overlap frames)")
    if tail.shape[0] < 1 or min(tail.shape[1:3]) < 1:
        raise ValueError(f"overlap join needs at least one frame of at least 1x1 pixels, got "
                         f"tail {tail.shape} and head {head.shape}")
    return np.ascontiguousarray(tail), np.ascontiguousarray(head)


def _grid(h: int, w: int) -> np.ndarray:
    g = np.empty((h, w, 2), np.float32)
    g[..., 0] = np.arange(w, dtype=np.float32)[None, :]
    g[..., 1] = np.arange(h, dtype=np.float32)[:, None]
    return g


def _highpass(g: np.ndarray) -> np.ndarray:
    g = g.astype(np.float32)
    return g - cv2.GaussianBlur(g, (0, 0), _HIGHPASS_SIGMA)


def _confidence(fab, fba, hp_a, hp_b, grid) -> np.ndarray:
    """Per-pixel trust in flow a->b: the way back must return (forward-backward check) and the
    matched high-passed gray must look alike, averaged over 5x5 so one lucky pixel is not a
    match."""
    target = grid + fab
    back = cv2.remap(fba, target, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    err = np.sum((fab + back) ** 2, axis=2)
    tol = (np.sum(fab**2, axis=2) + np.sum(back**2, axis=2)) * _FB_REL + _FB_ABS
    matched = cv2.remap(hp_b, target, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    photo = cv2.boxFilter((matched - hp_a) ** 2, -1, (5, 5))
    return np.exp(-(err / tol) - photo / _PHOTO_SIGMA**2).astype(np.float32)


def _measure(tail: np.ndarray, head: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step 2: displacement tail_j -> head_j (K, h, w, 2) and confidence (K, h, w), both at the
    working size."""
    k, h, w = tail.shape[:3]
    s = min(1.0, _WORK_SIDE / min(h, w))
    size = (max(1, round(w * s)), max(1, round(h * s)))
    grid = _grid(size[1], size[0])
    disp = np.empty((k, size[1], size[0], 2), np.float32)
    conf = np.empty((k, size[1], size[0]), np.float32)
    for j in range(k):
        ga, gb = gray(tail[j]), gray(head[j])
        if s < 1.0:
            ga = cv2.resize(ga, size, interpolation=cv2.INTER_AREA)
            gb = cv2.resize(gb, size, interpolation=cv2.INTER_AREA)
        fab = optical_flow(ga, gb, _FLOW_QUALITY)
        fba = optical_flow(gb, ga, _FLOW_QUALITY)
        disp[j] = fab
        conf[j] = _confidence(fab, fba, _highpass(ga), _highpass(gb), grid)
    return disp, conf


def _trajectory(disp: np.ndarray, conf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step 3: per-frame displacement to warp by, and its confidence."""
    k = disp.shape[0]
    if k == 1:
        return disp, conf
    s = (np.arange(k, dtype=np.float64) - (k - 1) / 2) / ((k - 1) / 2)
    basis = np.stack([np.ones_like(s), s, s * s], axis=1)  # (K, 3)
    c = conf.reshape(k, -1).astype(np.float64)  # (K, P)
    d = disp.reshape(k, -1, 2).astype(np.float64)  # (K, P, 2)
    # Normal equations per pixel: (Σ c_j b_j b_jᵀ + ridge) θ = Σ c_j b_j d_j
    # (written as matrix products over the K frames: several times faster than einsum)
    outer = (basis[:, :, None] * basis[:, None, :]).reshape(k, 9)
    lhs = (c.T @ outer).reshape(-1, 3, 3)
    lhs[:, np.arange(3), np.arange(3)] += _RIDGE
    rhs = np.stack([(c * d[..., ch]).T @ basis for ch in range(2)], axis=2)  # (P, 3, 2)
    theta = np.linalg.solve(lhs, rhs)
    pred = np.stack([basis @ theta[..., ch].T for ch in range(2)], axis=2)  # (K, P, 2)
    pred = pred.astype(np.float32).reshape(disp.shape)
    used = conf[..., None] * disp + (1.0 - conf[..., None]) * pred
    # Confidence carried to each frame: max over frames i of conf_i · exp(-|i-j|/τ), by a
    # forward and a backward running maximum.
    decay = np.float32(np.exp(-1.0 / _DECAY_FRAMES))
    fwd = conf.copy()
    for j in range(1, k):
        np.maximum(fwd[j], fwd[j - 1] * decay, out=fwd[j])
    bwd = conf.copy()
    for j in range(k - 2, -1, -1):
        np.maximum(bwd[j], bwd[j + 1] * decay, out=bwd[j])
    return used, np.maximum(fwd, bwd)


def _spatial_mask(h: int, w: int, sigma: float) -> np.ndarray:
    y = (np.arange(h, dtype=np.float32) - (h - 1) / 2) / np.float32(sigma * h)
    x = (np.arange(w, dtype=np.float32) - (w - 1) / 2) / np.float32(sigma * w)
    return np.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2)).astype(np.float32)


def _crossfade(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    if w <= 0.0:
        return a.copy()
    if w >= 1.0:
        return b.copy()
    return cv2.addWeighted(a, 1.0 - w, b, w, 0.0)


def join_overlap(tail: np.ndarray, head: np.ndarray,
                 params: OverlapParams = OverlapParams()) -> tuple[np.ndarray, JoinReport]:
    """Join the previous segment's last K frames (``tail``) with the next segment's first K
    (``head``), both uint8 (K, H, W, 3) showing the same instants; returns the K joined frames
    (uint8, same shape) and a `JoinReport`. K is taken from the arrays (``params.overlap`` is
    what the planner asks the engine for). See the module docstring for the method."""
    tail, head = _check_clips(tail, head)
    k, h, w = tail.shape[:3]
    weights = falloff_weights(k, params)
    same = [np.array_equal(tail[j], head[j]) for j in range(k)]
    if all(same):  # both renderings agree: nothing to hide, nothing to measure
        return tail.copy(), JoinReport("motion", 1.0)
    out = np.empty_like(tail)
    # Frames the morph could change: a real blend weight and two different images.
    todo = [j for j in range(k) if 0.0 < weights[j] < 1.0 and not same[j]]
    for j in set(range(k)) - set(todo):
        out[j] = _crossfade(tail[j], head[j], float(weights[j]))

    disp, conf = _measure(tail, head)
    mean_conf = float(conf.mean())
    if mean_conf < MIN_CONFIDENCE or params.motion_weight <= 0:
        for j in todo:
            out[j] = _crossfade(tail[j], head[j], float(weights[j]))
        if params.motion_weight <= 0:
            return out, JoinReport("crossfade", mean_conf)
        return out, JoinReport(
            "crossfade", mean_conf,
            f"overlap join fell back to a plain crossfade: motion confidence {mean_conf:.2f} "
            f"is below {MIN_CONFIDENCE:.2f} (the overlapping frames of the two segments do "
            f"not show matching content, so flow-guided blending would warp by noise)")

    used, carried = _trajectory(disp, conf)
    hs, ws = used.shape[1:3]
    up = np.array([w / ws, h / hs], np.float32)
    sigma = max(0.5, _FLOW_SMOOTH * min(hs, ws))
    mask = _spatial_mask(h, w, params.mask_sigma) * np.float32(params.motion_weight)
    for j in todo:
        wj = float(weights[j])
        d = cv2.GaussianBlur(used[j], (0, 0), sigma)
        share = carried[j]
        if (hs, ws) != (h, w):
            d = cv2.resize(d, (w, h), interpolation=cv2.INTER_LINEAR) * up
            share = cv2.resize(share, (w, h), interpolation=cv2.INTER_LINEAR)
        share = share * mask
        warped_tail = backward_warp(tail[j], d * np.float32(-wj))
        warped_head = backward_warp(head[j], d * np.float32(1.0 - wj))
        morph = cv2.addWeighted(warped_tail, 1.0 - wj, warped_head, wj, 0.0)
        cross = cv2.addWeighted(tail[j], 1.0 - wj, head[j], wj, 0.0)
        out[j] = cv2.blendLinear(morph, cross, share, 1.0 - share)
    return out, JoinReport("motion", mean_conf)


# Added to both sides of the ratio (grey levels): a still sequence (median difference 0) with
# no jump scores 1, not 0/0.
_SEAM_EPS = 0.1


def _frame_diffs(frames) -> np.ndarray:
    n = len(frames)
    diffs = np.empty(max(0, n - 1), np.float64)
    for i in range(1, n):
        a = np.asarray(frames[i - 1])
        b = np.asarray(frames[i])
        if a.shape != b.shape:
            raise ValueError(f"seam score: frame {i} has shape {b.shape}, frame {i - 1} "
                             f"{a.shape}")
        diffs[i - 1] = cv2.absdiff(a, b).mean() if a.dtype == np.uint8 else \
            np.abs(a.astype(np.float64) - b.astype(np.float64)).mean()
    return diffs


def seam_ratios(frames: Sequence[np.ndarray] | np.ndarray,
                boundaries: Sequence[int]) -> list[float]:
    """Per boundary b: mean abs difference of frames b-1 and b (per pixel and channel) over the
    median of all other consecutive-frame differences (each side plus _SEAM_EPS)."""
    n = len(frames)
    bset = sorted({int(b) for b in boundaries})
    if not bset:
        raise ValueError("seam score needs at least one boundary index")
    bad = [b for b in bset if not 1 <= b <= n - 1]
    if bad:
        raise ValueError(f"seam score: boundary indices {bad} are outside 1..{n - 1} for "
                         f"{n} frames (index b means the step from frame b-1 to frame b)")
    diffs = _frame_diffs(frames)
    others = np.delete(diffs, [b - 1 for b in bset])
    if others.size == 0:
        raise ValueError(f"seam score: {n} frames leave no frame step outside the boundaries "
                         f"{bset} to compare with")
    base = float(np.median(others)) + _SEAM_EPS
    return [(float(diffs[b - 1]) + _SEAM_EPS) / base for b in bset]


def seam_score(frames: Sequence[np.ndarray] | np.ndarray, boundaries: Sequence[int]) -> float:
    """Worst frame-difference spike at the given boundaries relative to the median frame
    difference elsewhere (see `seam_ratios`): 1.0 = the boundary step is as large as a typical
    step, i.e. no visible seam; a hard jump scores many times more."""
    return max(seam_ratios(frames, boundaries))


def seam_window_score(frames: Sequence[np.ndarray] | np.ndarray, boundaries: Sequence[int],
                      half: int) -> float:
    """Like `seam_score`, but the worst step anywhere within `half` frames of each boundary:
    an overlap join spreads the hand-over over several frames, so a fair comparison with a
    hard boundary looks at the whole neighbourhood, the same for every mode."""
    steps = sorted({b + d for b in boundaries for d in range(-half, half + 1)
                    if 1 <= b + d < len(frames)})
    return max(seam_ratios(frames, steps))

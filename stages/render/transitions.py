"""Shot transitions on frames: crossfade (pure numpy) and interpolated (optical-flow morph)."""

from __future__ import annotations

import math
from typing import Callable, Sequence

import cv2
import numpy as np

from stages.post.interpolate import backward_warp, gray, optical_flow

__all__ = ["TRANSITIONS", "blend_frames", "crossfade", "crossfade_frames", "morph", "morph_pair"]


def crossfade(tail: Sequence[np.ndarray], head: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Blend the last k frames of one shot (``tail``) into the first k of the next (``head``).

    Frame i (0-based) is ``(1 - w) * tail[i] + w * head[i]`` with ``w = (i + 1) / (k + 1)``: the
    head's weight goes from 1/(k+1) to k/(k+1), so no output frame duplicates a source frame.
    Computed in float32, rounded to nearest, returned as arrays of the inputs' dtype (uint8).
    ``len(tail) == len(head)`` is required, and all frames must share one shape; k == 0 gives [].
    """
    k = len(tail)
    if len(head) != k:
        raise ValueError(f"crossfade needs as many head frames as tail frames, got "
                         f"{k} tail and {len(head)} head")
    out: list[np.ndarray] = []
    if k == 0:
        return out
    shape = np.asarray(tail[0]).shape
    dtype = np.asarray(tail[0]).dtype
    for i, (a, b) in enumerate(zip(tail, head)):
        a = np.asarray(a)
        b = np.asarray(b)
        if a.shape != shape or b.shape != shape:
            raise ValueError(f"crossfade frame {i}: shapes differ ({a.shape} vs {b.shape}, "
                             f"expected {shape})")
        w = np.float32((i + 1) / (k + 1))
        mixed = a.astype(np.float32) * (np.float32(1.0) - w) + b.astype(np.float32) * w
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            mixed = np.clip(np.rint(mixed), info.min, info.max)
        out.append(mixed.astype(dtype))
    return out


def blend_frames(transition, fps: float, before: int, after: int) -> int:
    """Frames blended where a shot of `before` output frames meets one of `after` under
    `transition` (0 for a cut or a generated transition, whose clip stands between them):
    the crossfade's frames, limited by both shots' lengths."""
    if transition.type not in TRANSITIONS:
        return 0
    return max(0, min(crossfade_frames(transition.duration, fps), before - 1, after - 1))


def crossfade_frames(duration_s: float, fps: float) -> int:
    """Number of blended frames for a crossfade of ``duration_s`` at ``fps``:
    ``round(duration_s * fps)`` (halves round up), at least 1."""
    duration_s = float(duration_s)
    fps = float(fps)
    if not math.isfinite(duration_s) or duration_s < 0:
        raise ValueError(f"crossfade duration must be a finite number >= 0, got {duration_s}")
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    # a small epsilon so 0.5 s * 5 fps = 2.4999999 still gives 3
    return max(1, int(math.floor(duration_s * fps + 0.5 + 1e-9)))


# Flow fields between two different shots are only trusted in their broad strokes: they are
# smoothed with a Gaussian this fraction of the frame's short side wide, so the morph is a smooth
# deformation rather than a tear along every mismatched edge.
_MORPH_FLOW_SIGMA = 0.03
_MORPH_WORK_SIDE = 256  # flow is estimated with the short side scaled to about this


def _morph_flows(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = a.shape[:2]
    s = min(1.0, _MORPH_WORK_SIDE / max(1, min(h, w)))
    size = (max(8, round(w * s)), max(8, round(h * s)))
    ga = cv2.resize(gray(a), size, interpolation=cv2.INTER_AREA)
    gb = cv2.resize(gray(b), size, interpolation=cv2.INTER_AREA)
    sigma = max(1.0, _MORPH_FLOW_SIGMA * min(size))
    up = np.array([w / size[0], h / size[1]], np.float32)
    flows = []
    for src, dst in ((ga, gb), (gb, ga)):
        f = cv2.GaussianBlur(optical_flow(src, dst, "medium"), (0, 0), sigma)
        flows.append(cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR) * up)
    return flows[0], flows[1]


def morph_pair(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """A flow-based morph from frame ``a`` (t=0) to frame ``b`` (t=1).

    Dense flow a->b and b->a (smoothed, see _MORPH_FLOW_SIGMA); ``a`` is pushed a fraction t
    of the way along its flow, ``b`` pulled back the remaining 1-t, and the two are
    cross-dissolved with weight t. Where the shots share structure (the same set, a similar
    framing) it slides into the next shot instead of showing two images at once.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"morph frames differ in shape: {a.shape} vs {b.shape}")
    t = float(t)
    f_ab, f_ba = _morph_flows(a, b)
    # Backward maps at time t, reading each flow where the output pixel is (linear motion).
    warped_a = backward_warp(a, f_ab * np.float32(-t))
    warped_b = backward_warp(b, f_ba * np.float32(-(1.0 - t)))
    return cv2.addWeighted(warped_a, 1.0 - t, warped_b, t, 0.0)


def morph(tail: Sequence[np.ndarray], head: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Like `crossfade` (same frames, same weights (i+1)/(k+1)), but each pair is morphed."""
    k = len(tail)
    if len(head) != k:
        raise ValueError(f"morph needs as many head frames as tail frames, got "
                         f"{k} tail and {len(head)} head")
    return [morph_pair(a, b, (i + 1) / (k + 1)) for i, (a, b) in enumerate(zip(tail, head))]


# Transition type -> how the overlapping frames of two shots are mixed.
TRANSITIONS: dict[str, Callable[[Sequence[np.ndarray], Sequence[np.ndarray]], list[np.ndarray]]] = {
    "crossfade": crossfade,
    "interpolated": morph,
}

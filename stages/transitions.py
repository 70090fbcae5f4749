"""Shot transitions on frames (pure numpy)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["crossfade", "crossfade_frames"]


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

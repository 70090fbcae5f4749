"""Temporal smoothing: motion-compensated, cut-aware averaging of each frame with its neighbours.

For frame i and each neighbour j in the window (same scene only):
1. dense optical flow from i to j, and j warped onto i by it (so a moving object is averaged with
   itself, not with the background it left behind: no ghost trails);
2. a per-pixel weight exp(-d² / 2σ²), d the local (5x5) RMS gray difference between i and the
   warped j: where the warp is right, d is only noise and the neighbour counts; where it is
   wrong (occlusions, flow errors, new content) d is large and the neighbour drops out. σ is the
   median of d over the frame: most of a frame is aligned, so the median measures the noise
   itself, and only differences beyond the noise level are rejected (a fixed σ either keeps
   slightly misaligned texture, which blurs, or rejects real noise, which stays);
3. out = (f_i + s·Σ w_j·warp(f_j)) / (1 + s·Σ w_j), s the strength: 0 leaves the frame as it is,
   1 averages it with every neighbour that agrees with it.
Generation noise and shimmer vary from frame to frame while content moves along the flow, so the
average removes the first and keeps the second.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Literal, Mapping

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from stages.post.interpolate import backward_warp, gray, optical_flow
from stages.post.registry import register
from stages.post.stream import PostFrame, Window, check_image, windows

# Flow and weights are computed with the short side at most this (halving the frame until it
# fits): a 1440p frame's motion and noise level are fully described at 720p, at a quarter of the
# cost; the warp itself always runs at full resolution with the upsampled flow.
_WORK_SIDE = 720

# Bounds of σ, the local RMS gray difference (0..255) at which a neighbour's weight is 0.6:
# at least a rounding error, at most a difference no noise explains (a flash, a wrong flow).
_SIGMA_MIN, _SIGMA_MAX = 2.0, 20.0


class SmoothParams(BaseModel):
    """Motion-compensated temporal smoothing (cut-aware)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)
    strength: float = Field(0.3, ge=0.0, le=1.0)
    """Weight of the warped neighbours against the frame itself: 0 off, 1 a full average."""
    window: Literal[3, 5, 7] = 3
    """Frames averaged, centred on each frame (same scene only): 3, 5 or 7."""
    # false: a plain temporal average, which ghosts on anything that moves (static footage only).
    motion: bool = True
    """true: warp neighbours onto the frame by optical flow first; false: a plain average (static footage only)."""
    quality: Literal["ultrafast", "fast", "medium"] = "fast"
    """Optical-flow preset: ultrafast, fast or medium (slower, better on fine motion)."""


def _work_scale(h: int, w: int) -> int:
    scale = 1
    while min(h, w) / scale > _WORK_SIDE:
        scale *= 2
    return scale


def _smooth_window(win: Window, radius: int, strength: float, motion: bool,
                   quality: str) -> np.ndarray:
    frame = win.center.image
    g = win.data
    h, w_ = frame.shape[:2]
    scaled = g.shape != (h, w_)
    # The running weighted mean is kept in uint8 and updated with cv2.blendLinear
    # ((a·A + b·B) / (a + b) per pixel): on a 1440p frame, float copies of the 3-channel images
    # cost several times more than the optical flow itself. Each update rounds to nearest, so a
    # window of 7 (six updates) is within 1.5 levels of the exact mean.
    out = frame
    wsum = np.ones(frame.shape[:2], np.float32)
    neighbours = [(f, d, len(win.before) - k) for k, (f, d) in enumerate(zip(win.before,
                                                                              win.before_data))]
    neighbours += [(f, d, k + 1) for k, (f, d) in enumerate(zip(win.after, win.after_data))]
    for item, g_nb, dist in neighbours:
        if item.image.shape != frame.shape:
            raise ValueError(f"smooth: frame {win.index} has shape {frame.shape}, a neighbour "
                             f"{item.image.shape}")
        if motion:
            flow = optical_flow(g, g_nb, quality)
            g_warped = backward_warp(g_nb, flow)
            if scaled:
                up = np.float32(w_ / g.shape[1]), np.float32(h / g.shape[0])
                flow = cv2.resize(flow, (w_, h), interpolation=cv2.INTER_LINEAR)
                flow[..., 0] *= up[0]
                flow[..., 1] *= up[1]
            warped = backward_warp(item.image, flow)
        else:
            warped, g_warped = item.image, g_nb
        diff = cv2.subtract(g_warped, g, dtype=cv2.CV_32F)
        d2 = cv2.boxFilter(cv2.multiply(diff, diff), -1, (5, 5))
        sigma2 = float(np.clip(np.median(d2[::4, ::4]), _SIGMA_MIN**2, _SIGMA_MAX**2))
        temporal = float(strength * np.exp(-(dist**2) / (2.0 * radius**2)))
        w = cv2.exp(cv2.multiply(d2, -1.0 / (2.0 * sigma2)))
        w = cv2.multiply(w, temporal)
        if scaled:
            w = cv2.resize(w, (w_, h), interpolation=cv2.INTER_LINEAR)
        out = cv2.blendLinear(out, warped, wsum, w)
        wsum = cv2.add(wsum, w)
    return out


def smooth_stream(stream: Iterable[PostFrame], strength: float = 0.3, window: int = 3,
                  motion: bool = True, quality: str = "fast") -> Iterator[PostFrame]:
    """Smooth every frame with its same-scene neighbours; holds `window` frames."""
    if window not in (3, 5, 7):
        raise ValueError(f"smooth: window must be 3, 5 or 7, got {window!r}")
    if strength <= 0:
        yield from stream
        return

    def prepare(item: PostFrame):
        g = gray(check_image(item.image, "smooth"))
        scale = _work_scale(*g.shape)
        if scale > 1:
            size = (max(1, round(g.shape[1] / scale)), max(1, round(g.shape[0] / scale)))
            g = cv2.resize(g, size, interpolation=cv2.INTER_AREA)
        return g

    for win in windows(stream, window // 2, prepare):
        if not win.before and not win.after:
            yield win.center  # a one-frame scene: nothing to average with
            continue
        yield PostFrame(_smooth_window(win, window // 2, strength, motion, quality),
                        win.center.cut)


def _run(stream: Iterator[PostFrame], fps: float, params: SmoothParams,
         digests: Mapping[str, str]) -> Iterator[PostFrame]:
    return smooth_stream(stream, params.strength, params.window, params.motion, params.quality)


register("smooth", SmoothParams, _run, temporal=True, smooths=True)

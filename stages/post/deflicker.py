"""Luminance deflicker: evens out frame-to-frame brightness pumping, cut-aware.

Each frame's mean luminance is compared with the mean over a centred window of its same-scene
neighbours; the frame is scaled by target / own (raised to `strength`, limited to ±50%). A slow
fade changes the window mean as fast as the frame, so it survives; a one-frame pump does not.
Scaling RGB by one gain keeps hue and saturation ratios.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Mapping

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from stages.post.registry import register
from stages.post.stream import PostFrame, check_image, windows

_STATS_WIDTH = 160
_GAIN_LIMITS = (0.5, 1.5)


class DeflickerParams(BaseModel):
    """Luminance deflicker over a centred window of frames (odd, 3..31)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)
    window: int = Field(7, ge=3, le=31)
    """Frames in the centred window whose mean brightness each frame is scaled to (odd, 3..31)."""
    strength: float = Field(1.0, ge=0.0, le=1.0)
    """How much of the correction is applied: 0 none, 1 all."""

    @field_validator("window")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"window must be odd (the frame sits in the middle), got {value}")
        return value


def mean_luma(image: np.ndarray) -> float:
    h, w = image.shape[:2]
    if w > _STATS_WIDTH:
        image = cv2.resize(image, (_STATS_WIDTH, max(1, round(h * _STATS_WIDTH / w))),
                           interpolation=cv2.INTER_AREA)
    return float(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).mean())


def deflicker_stream(stream: Iterable[PostFrame], window: int = 7,
                     strength: float = 1.0) -> Iterator[PostFrame]:
    """Holds `window` frames."""
    def prepare(item: PostFrame) -> float:
        return mean_luma(check_image(item.image, "deflicker"))

    for win in windows(stream, window // 2, prepare):
        lumas = [*win.before_data, win.data, *win.after_data]
        own = win.data
        if strength <= 0 or len(lumas) < 2 or own < 1.0:
            yield win.center
            continue
        target = float(np.mean(lumas))
        gain = float(np.clip((target / own) ** strength, *_GAIN_LIMITS))
        if abs(gain - 1.0) < 1e-3:
            yield win.center
            continue
        out = cv2.convertScaleAbs(win.center.image, alpha=gain)
        yield PostFrame(out, win.center.cut)


def _run(stream: Iterator[PostFrame], fps: float, params: DeflickerParams,
         digests: Mapping[str, str]) -> Iterator[PostFrame]:
    return deflicker_stream(stream, params.window, params.strength)


register("deflicker", DeflickerParams, _run, temporal=True, smooths=True)

"""audio_color: a colour grade that changes per frame (hue, saturation, exposure curves).

The audio-reactive schedules (stages.audio.schedules) add it to the episode when a storyboard
maps audio to hue, saturation or exposure; it runs on the assembled episode (stages.render.
assemble), because the curves follow the episode's timeline, which is the soundtrack's.
It is a registered stage, so a chain may also name it with constant values:
`{stage: audio_color, hue: [10]}` turns every frame's hue by 10 degrees.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Mapping, Sequence

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from stages.post.registry import register
from stages.post.stream import PostFrame


class AudioColorParams(BaseModel):
    """Per-frame colour offsets; a list shorter than the video holds its last value."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    hue: tuple[float, ...] = Field((), description="Hue rotation per frame, in degrees.")
    saturation: tuple[float, ...] = Field(
        (), description="Saturation change per frame, as a fraction (0.2: 20% more, -1: grey).")
    exposure: tuple[float, ...] = Field(
        (), description="Exposure change per frame, in stops (1: twice the light).")


def _at(values: Sequence[float], index: int) -> float:
    if not values:
        return 0.0
    return float(values[min(index, len(values) - 1)])


def grade(image: np.ndarray, hue: float = 0.0, saturation: float = 0.0,
          exposure: float = 0.0) -> np.ndarray:
    """`image` (uint8 RGB) with hue turned by `hue` degrees, saturation scaled by
    1 + `saturation` and exposure changed by `exposure` stops (in linear light)."""
    if abs(hue) < 1e-6 and abs(saturation) < 1e-6 and abs(exposure) < 1e-6:
        return image
    out = image
    if abs(exposure) >= 1e-6:
        # Exposure scales light, so it acts on linear values (a 2.2 gamma is close enough here).
        levels = np.arange(256, dtype=np.float32) / 255.0
        lut = np.clip((levels ** 2.2 * 2.0 ** exposure) ** (1 / 2.2) * 255.0 + 0.5, 0, 255)
        out = cv2.LUT(out, lut.astype(np.uint8))
    if abs(hue) >= 1e-6 or abs(saturation) >= 1e-6:
        hsv = cv2.cvtColor(out.astype(np.float32) * np.float32(1 / 255.0), cv2.COLOR_RGB2HSV)
        hsv[..., 0] = np.mod(hsv[..., 0] + hue, 360.0)
        hsv[..., 1] = np.clip(hsv[..., 1] * (1.0 + saturation), 0.0, 1.0)
        out = np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


def graded(frames: Iterable[np.ndarray], curves: Mapping[str, Sequence[float]]
           ) -> Iterator[np.ndarray]:
    """Frames with curves[name][i] applied to frame i (names: hue, saturation, exposure)."""
    hue, sat, exp = (curves.get(k, ()) for k in ("hue", "saturation", "exposure"))
    for i, frame in enumerate(frames):
        yield grade(frame, _at(hue, i), _at(sat, i), _at(exp, i))


def _run(stream: Iterator[PostFrame], fps: float, params: AudioColorParams,
         digests: Mapping[str, str]) -> Iterator[PostFrame]:
    for i, item in enumerate(stream):
        yield PostFrame(grade(item.image, _at(params.hue, i), _at(params.saturation, i),
                              _at(params.exposure, i)), item.cut)


register("audio_color", AudioColorParams, _run)

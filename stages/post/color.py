"""Colour: match a clip to a reference image's look, then optionally apply a .cube LUT.

Matching works in CIE Lab (perceptual: L is lightness, a/b are colour-opponent axes, so moving a
channel's mean shifts one perceptual property without the hue twists an RGB gain causes). Each
frame's Lab channels are shifted and scaled so their mean and standard deviation equal the
reference's (Reinhard et al. 2001). The frame statistics are pooled over a centred window of
same-scene frames, so the correction follows the content smoothly instead of flickering with
every frame, and restarts at a cut.
"""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar, Iterable, Iterator, Mapping

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from stages.post.lut import CubeLut, apply_lut, load_cube
from stages.post.registry import register
from stages.post.stream import PostFrame, check_image, windows
from stages.media.video_io import load_png

_STATS_WIDTH = 256
# A channel with almost no spread is not stretched to the reference's (noise would explode).
_MIN_STD = 1.0
_SCALE_LIMITS = (0.25, 4.0)


class ColorParams(BaseModel):
    """Colour match to a reference image (Lab mean/std) and/or a .cube LUT."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)
    # File parameters: what each is (for messages) and the suffixes it may have (none: any).
    files: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {
        "reference": ("colour reference image", ()), "lut": ("LUT", (".cube",))}
    reference: str | None = Field(None, min_length=1)
    """An image whose CIE Lab mean and spread every frame is matched to, relative to the storyboard."""
    strength: float = Field(1.0, ge=0.0, le=1.0)
    """How much of the reference match is applied: 0 none, 1 all."""
    window: int = Field(9, ge=1, le=61)  # frames whose statistics are pooled (centred)
    """Frames (centred, same scene) whose statistics are pooled, so the correction does not flicker."""
    lut: str | None = Field(None, min_length=1)
    """A .cube LUT (3D or 1D) applied after the match, relative to the storyboard."""
    lut_strength: float = Field(1.0, ge=0.0, le=1.0)
    """Mix of the LUT's result with the frame: 0 none, 1 all."""

    @model_validator(mode="after")
    def _something_to_do(self):
        if self.reference is None and self.lut is None:
            raise ValueError("give reference: IMAGE (colour match) and/or lut: FILE.cube")
        return self


def to_lab(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image.astype(np.float32) * np.float32(1.0 / 255.0), cv2.COLOR_RGB2Lab)


def from_lab(lab: np.ndarray) -> np.ndarray:
    rgb = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def lab_stats(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel Lab mean and mean square (poolable over frames), from a downscaled copy."""
    h, w = image.shape[:2]
    if w > _STATS_WIDTH:
        image = cv2.resize(image, (_STATS_WIDTH, max(1, round(h * _STATS_WIDTH / w))),
                           interpolation=cv2.INTER_AREA)
    lab = to_lab(image).reshape(-1, 3).astype(np.float64)
    return lab.mean(0), (lab * lab).mean(0)


def _mean_std(stats: Iterable[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    stats = list(stats)
    mean = np.mean([m for m, _ in stats], 0)
    square = np.mean([s for _, s in stats], 0)
    return mean, np.sqrt(np.maximum(square - mean * mean, 0.0))


def match_lab(image: np.ndarray, src: tuple[np.ndarray, np.ndarray],
              ref: tuple[np.ndarray, np.ndarray], strength: float = 1.0) -> np.ndarray:
    """`image` with Lab mean/std moved from `src` (mean, std) to `ref`, by `strength`."""
    (m_s, sd_s), (m_r, sd_r) = src, ref
    scale = np.where(sd_s > _MIN_STD, sd_r / np.maximum(sd_s, 1e-6), 1.0)
    scale = np.clip(scale, *_SCALE_LIMITS)
    gain = 1.0 + strength * (scale - 1.0)
    offset = strength * (m_r - m_s * scale)  # matched = x·scale + (m_r - m_s·scale)
    # x + strength·(matched - x) = x·gain + offset
    lab = to_lab(image)
    lab = lab * gain.astype(np.float32) + offset.astype(np.float32)
    return from_lab(lab)


@lru_cache(maxsize=4)
def reference_stats(path: str, digest: str = "") -> tuple[np.ndarray, np.ndarray]:
    return _mean_std([lab_stats(load_png(path))])


@lru_cache(maxsize=4)
def cached_cube(path: str, digest: str = "") -> CubeLut:
    """The parsed LUT, once per file content: validation parses it (a bad table is a storyboard
    problem, reported before anything renders) and the render reuses it."""
    return load_cube(path)


_cube = cached_cube


def color_stream(stream: Iterable[PostFrame], params: ColorParams,
                 digests: Mapping[str, str] | None = None) -> Iterator[PostFrame]:
    digests = digests or {}
    lut = _cube(params.lut, digests.get("lut", "")) if params.lut else None
    if params.reference is None or params.strength <= 0:
        for i, item in enumerate(stream):
            image = check_image(item.image, f"color: frame {i}")
            yield PostFrame(apply_lut(image, lut, params.lut_strength) if lut else image,
                            item.cut)
        return
    ref = reference_stats(params.reference, digests.get("reference", ""))

    def prepare(item: PostFrame):
        return lab_stats(check_image(item.image, "color"))

    for win in windows(stream, params.window // 2, prepare):
        src = _mean_std([*win.before_data, win.data, *win.after_data])
        out = match_lab(win.center.image, src, ref, params.strength)
        if lut is not None:
            out = apply_lut(out, lut, params.lut_strength)
        yield PostFrame(out, win.center.cut)


def _run(stream: Iterator[PostFrame], fps: float, params: ColorParams,
         digests: Mapping[str, str]) -> Iterator[PostFrame]:
    return color_stream(stream, params, digests)


def _check_file(param: str, path: str, digest: str) -> None:
    if param == "lut":
        cached_cube(path, digest)  # LutError (a ValueError) names what is wrong in the table


register("color", ColorParams, _run, temporal=True, check_file=_check_file)

"""Spatial upscaling: Lanczos (OpenCV) by default, a Real-ESRGAN-style model when `model:` is set.

The output size is the input size times `factor`, rounded to even numbers (H.264/H.265 in
yuv420p need even sides), so the size is known when the chain is planned. A model with another
native scale (x4 weights for factor 2) is run at its scale and resized to that size.
One frame at a time; a model works in tiles, so memory does not grow with frame size either.
The stage declares its own model loader (esrgan.load_upscaler), so load_models preloads the weights
before any frame is processed.
"""

from __future__ import annotations

from typing import ClassVar, Iterable, Iterator, Literal, Mapping

import cv2
from pydantic import BaseModel, ConfigDict, Field, model_validator

from stages.post.registry import register
from stages.post.stream import PostFrame, check_image

_FILTERS = {"lanczos": cv2.INTER_LANCZOS4, "bicubic": cv2.INTER_CUBIC}


class UpscaleParams(BaseModel):
    """Spatial upscale by `factor` (Lanczos, or a Real-ESRGAN-style model)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)
    files: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {"model": ("model", ())}
    factor: float = Field(2.0, gt=1.0, le=8.0)
    """Scale of each side, >1..8; sides are rounded to even numbers."""
    filter: Literal["lanczos", "bicubic"] = "lanczos"
    """Resampling filter without `model` (and to reach `factor` from a model's native scale)."""
    model: str | None = Field(None, min_length=1)  # RRDBNet / SRVGGNetCompact weights
    """A Real-ESRGAN-style checkpoint (RRDBNet or SRVGGNetCompact, .pth or .safetensors), relative to the storyboard."""
    tile: int = Field(256, ge=32, le=4096)  # model tile size (input pixels)
    """With `model`: tile size in input pixels (smaller uses less memory)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """With `model`: auto (cuda when available), cpu or cuda."""

    @model_validator(mode="after")
    def _model_keys(self):
        if self.model is None and "tile" in self.model_fields_set:
            raise ValueError("tile only applies with a model; set model: PATH or drop tile")
        return self


def upscaled_size(width: int, height: int, factor: float) -> tuple[int, int]:
    """(width, height) times factor, each rounded to the nearest even number (at least 2)."""
    def even(v: float) -> int:
        return max(2, 2 * round(v / 2))

    return even(width * factor), even(height * factor)


def upscale_stream(stream: Iterable[PostFrame], params: UpscaleParams,
                   digest: str = "") -> Iterator[PostFrame]:
    model = None
    if params.model is not None:
        from stages.post.upscale.esrgan import load_upscaler

        model = load_upscaler(params.model, digest, params.device, params.tile)
    for i, item in enumerate(stream):
        image = check_image(item.image, f"upscale: frame {i}")
        size = upscaled_size(image.shape[1], image.shape[0], params.factor)
        if model is not None:
            out = model.resize(image, size)
        else:
            out = cv2.resize(image, size, interpolation=_FILTERS[params.filter])
        yield PostFrame(out, item.cut)


def _run(stream: Iterator[PostFrame], fps: float, params: UpscaleParams,
         digests: Mapping[str, str]) -> Iterator[PostFrame]:
    return upscale_stream(stream, params, digests.get("model", ""))


def _load(params: UpscaleParams, digests: Mapping[str, str]) -> None:
    if params.model is not None:
        from stages.post.upscale.esrgan import load_upscaler  # torch loads only with a model

        load_upscaler(params.model, digests.get("model", ""), params.device, params.tile)


register("upscale", UpscaleParams, _run,
         size_out=lambda width, height, p: upscaled_size(width, height, p.factor), load=_load)

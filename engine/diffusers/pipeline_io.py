"""Between numpy and a diffusers pipeline: frames out (uint8), images in (PIL), and quiet
loading (no per-component progress bars in the render log)."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np


def to_uint8(frames: Any) -> np.ndarray:
    """Pipeline output (float in [0, 1], (T, H, W, C) or a list of PIL images) to uint8."""
    if isinstance(frames, list) and frames and hasattr(frames[0], "size"):
        return np.stack([np.asarray(img.convert("RGB")) for img in frames])
    array = np.asarray(frames)
    if array.dtype == np.uint8:
        return array
    return (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def pil(image: np.ndarray):
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(image))


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """No per-component progress bars in the render log while a pipeline loads."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        dlog.enable_progress_bar()
        tlog.enable_progress_bar()

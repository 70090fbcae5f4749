"""Loading and fitting still images (start / end / reference images) to a generation size.

`load_rgb` is what the planner uses for storyboard images and what engines use to fit a request's
images: the result is always uint8 RGB of shape (height, width, 3), resized to COVER the frame
(scale so both sides are at least the target, keeping the aspect ratio) and centre-cropped.
An image already at the target size is returned unchanged (a copy, no resampling).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Union

import cv2
import numpy as np

__all__ = ["ImageLoadError", "cover_resize", "load_rgb", "to_rgb_uint8"]

PathOrArray = Union[str, "os.PathLike[str]", np.ndarray]


class ImageLoadError(ValueError):
    """An image could not be read or converted to RGB uint8."""


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Convert an array image to uint8 RGB (H, W, 3).

    Accepts (H, W) or (H, W, 1) grey, (H, W, 3) RGB and (H, W, 4) RGBA (alpha dropped); dtypes
    uint8, uint16 (scaled by 1/257), bool, and floats in [0, 1] (clipped, rounded).
    """
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ImageLoadError(
            f"image array has shape {arr.shape}; expected (H, W), (H, W, 3) or (H, W, 4)"
        )
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageLoadError(f"image array is empty: shape {arr.shape}")
    arr = arr[:, :, :3]
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if arr.dtype == np.uint16:
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise ImageLoadError("float image contains NaN or infinity")
        return np.clip(np.rint(arr.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    raise ImageLoadError(
        f"image dtype {arr.dtype} is not supported; use uint8, uint16, bool or float in [0, 1]"
    )


def cover_resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize uint8 (H, W, C) `image` to cover width x height and centre-crop to exactly that.

    Downscaling uses area averaging, upscaling bicubic. Same size: a copy, pixels untouched.
    """
    if width < 1 or height < 1:
        raise ValueError(f"target size must be positive, got {width}x{height}")
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image.copy()
    scale = max(width / w, height / h)
    new_w = max(width, int(math.ceil(w * scale - 1e-9)))
    new_h = max(height, int(math.ceil(h * scale - 1e-9)))
    if (new_w, new_h) != (w, h):
        interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_CUBIC
        image = cv2.resize(np.ascontiguousarray(image), (new_w, new_h), interpolation=interp)
        if image.ndim == 2:
            image = image[:, :, None]
    x0 = (new_w - width) // 2
    y0 = (new_h - height) // 2
    return np.ascontiguousarray(image[y0 : y0 + height, x0 : x0 + width])


def load_rgb(path_or_array: PathOrArray, width: int, height: int) -> np.ndarray:
    """Read an image file (any format Pillow reads; EXIF orientation applied) or take an array,
    and return it as uint8 RGB (height, width, 3), cover-resized and centre-cropped."""
    if isinstance(path_or_array, np.ndarray):
        rgb = to_rgb_uint8(path_or_array)
    elif isinstance(path_or_array, (str, os.PathLike)):
        from PIL import Image, ImageOps, UnidentifiedImageError

        path = Path(path_or_array)
        try:
            with Image.open(path) as im:
                im = ImageOps.exif_transpose(im)
                if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                    arr = np.asarray(im)
                    rgb = to_rgb_uint8(
                        arr.astype(np.uint16) if arr.dtype != np.uint16 else arr
                    )
                else:
                    rgb = np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
        except FileNotFoundError as exc:
            raise ImageLoadError(f"image file not found: {path}") from exc
        except (UnidentifiedImageError, OSError) as exc:
            raise ImageLoadError(f"cannot read image {path}: {exc}") from exc
    else:
        raise ImageLoadError(
            f"expected an image path or a numpy array, got {type(path_or_array).__name__}"
        )
    return cover_resize(rgb, int(width), int(height))


def fit_frames(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """Frames (T, H, W, 3) cover-resized to (height, width); unchanged when already that size
    (a pipeline that rounded the size, a fallback engine with another size multiple)."""
    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([cover_resize(f, width, height) for f in frames])

"""Depth map files: 8- or 16-bit grayscale PNG (RGB is read as its luminance), white = near,
black = far, fitted to the frame exactly as the shot's image is (engine.images.cover_resize), so
depth and pixels stay aligned."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..images import cover_resize

__all__ = ["DepthMapError", "fit_depth", "load_depth_map", "read_depth_map"]

# Pillow modes a depth map may have, and the value of white in each.
_WHITE = {"L": 255.0, "P": 255.0, "LA": 255.0, "RGB": 255.0, "RGBA": 255.0, "I;16": 65535.0,
          "I;16B": 65535.0, "I;16L": 65535.0, "I": 65535.0, "F": 1.0}


class DepthMapError(ValueError):
    """A depth map file that cannot be used; the message says why and what would do."""


def read_depth_map(path: str | os.PathLike) -> np.ndarray:
    """The depth map in `path` as float32 (H, W) in 0..1, 1 = nearest (white)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            mode = im.mode
            if mode not in _WHITE:
                raise DepthMapError(f"depth map {path.name!r} has image mode {mode!r}; give an "
                                    "8- or 16-bit grayscale PNG, white = near, black = far")
            if mode in ("P", "LA", "RGB", "RGBA"):
                arr = np.asarray(im.convert("L"), np.float32)  # luminance
            else:
                arr = np.asarray(im, np.float32)
    except FileNotFoundError:
        raise DepthMapError(f"depth map {str(path)!r} not found") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as exc:
        raise DepthMapError(f"depth map {path.name!r} is not a readable image ({exc}); give an "
                            "8- or 16-bit grayscale PNG, white = near, black = far") from None
    depth = arr / _WHITE[mode]
    if not np.all(np.isfinite(depth)):
        raise DepthMapError(f"depth map {path.name!r} holds non-finite values")
    return np.clip(depth, 0.0, 1.0).astype(np.float32)


def fit_depth(depth: np.ndarray, width: int, height: int) -> np.ndarray:
    """`depth` (H, W) cover-resized and centre-cropped to width x height like the shot's image."""
    if depth.shape == (height, width):
        return depth.astype(np.float32)
    fitted = cover_resize(np.ascontiguousarray(depth, np.float32)[:, :, None], width, height)
    return np.clip(fitted[..., 0], 0.0, 1.0).astype(np.float32)


def load_depth_map(path: str | os.PathLike, width: int, height: int) -> np.ndarray:
    """`read_depth_map` fitted to the frame: float32 (height, width) in 0..1, 1 = nearest."""
    return fit_depth(read_depth_map(path), width, height)



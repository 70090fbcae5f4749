"""The live preview file: `renders/NAME/preview.png`, the picture of the segment being sampled.

Engines hand a small RGB picture every few steps (engine.base.preview_hook: a latent's middle
frame projected to RGB for diffusers engines, the frame just drawn for the preview engine); this
writes it at a viewable size, atomically (temp file + rename), so a viewer that reloads the file
never reads half of it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

PREVIEW_NAME = "preview.png"
LONG_SIDE = 256  # pixels on the preview's long side: latents (1/8 or 1/16 scale) grow to it


def preview_image(rgb: np.ndarray, long_side: int = LONG_SIDE):
    """A PIL image of uint8 RGB (h, w, 3) scaled to `long_side` on its long side."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")
    width, height = image.size
    scale = long_side / max(width, height)
    if abs(scale - 1.0) > 1e-3:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = image.resize(size, Image.BILINEAR if scale > 1 else Image.BOX)
    return image


def write_preview(path: Path, rgb: np.ndarray) -> Path:
    """Write the preview PNG at `path` atomically; returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".preview-", suffix=".png", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            preview_image(rgb).save(handle, format="PNG", compress_level=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path

"""Single frames as PNG: lossless, atomic saves (the last frame of every segment) and loads of
any image OpenCV reads as uint8 RGB."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from stages.media.atomic import atomic_write_bytes

__all__ = ["save_png", "load_png"]


def save_png(path: Path | str, frame: np.ndarray, compression: int = 3) -> Path:
    """Save a uint8 RGB HxWx3 frame as a lossless PNG, atomically. Returns the path."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 \
            or frame.shape[2] != 3:
        raise ValueError(
            f"save_png needs a uint8 HxWx3 RGB array, got "
            f"{getattr(frame, 'dtype', type(frame).__name__)} {getattr(frame, 'shape', '')}"
        )
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_PNG_COMPRESSION, int(compression)])
    if not ok:
        raise RuntimeError(f"PNG encoding failed for {path}")
    return atomic_write_bytes(Path(path), buf.tobytes())


def load_png(path: Path | str) -> np.ndarray:
    """Load an image (PNG or anything OpenCV reads) as uint8 RGB HxWx3 (gray/alpha/16-bit are
    converted)."""
    path = Path(path)
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"could not decode image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

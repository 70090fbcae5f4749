"""Synthetic test media shared by tests and benchmarks."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image


def texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Noise smoothed at a few scales: fine grain for precision, coarse blobs so optical flow's
    coarse pyramid levels see the motion too. uint8 RGB (h, w, 3)."""
    acc = np.zeros((h, w, 3), np.float32)
    for s in (1.5, 3.0, 6.0):
        acc += cv2.GaussianBlur(rng.random((h, w, 3), dtype=np.float32), (0, 0), s) * s
    acc = (acc - acc.mean()) / (acc.std() + 1e-6) * 50 + 128
    return np.clip(acc, 0, 255).astype(np.uint8)


def write_png(path: Path, width: int, height: int, seed: int = 0) -> Path:
    """A small textured image (so optical flow and chaining have something to track)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    img = cv2.resize(base, (width, height), interpolation=cv2.INTER_LINEAR)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path

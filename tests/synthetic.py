"""Synthetic test media shared by tests and benchmarks."""

from __future__ import annotations

import cv2
import numpy as np


def texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Noise smoothed at a few scales: fine grain for precision, coarse blobs so optical flow's
    coarse pyramid levels see the motion too. uint8 RGB (h, w, 3)."""
    acc = np.zeros((h, w, 3), np.float32)
    for s in (1.5, 3.0, 6.0):
        acc += cv2.GaussianBlur(rng.random((h, w, 3), dtype=np.float32), (0, 0), s) * s
    acc = (acc - acc.mean()) / (acc.std() + 1e-6) * 50 + 128
    return np.clip(acc, 0, 255).astype(np.uint8)

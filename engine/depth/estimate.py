"""Monocular depth estimation with a local transformers depth model (Depth Anything, DPT).

Used for shots with `depth: estimate` (2.5D camera moves) and for depth control videos. Like every
model in reelforge the weights come from a local folder (`depth.model` in conf/config.yaml):
nothing downloads, and a missing or wrong folder is an EngineConfigError naming the key.

The result is *relative inverse depth* (disparity-like: bigger = nearer), which is what these
models predict; it is normalised to 0..1 over the whole call (1 = nearest), so the frames of one
call share one scale and a video's depth does not flicker from per-frame normalisation.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..local_models import HelperModel

__all__ = ["estimate_depth", "depth_model_identity", "clear_depth_models"]

# Frames per forward pass: bounds memory for long control videos.
_BATCH = 8
DEPTH = HelperModel("depth", "depth.model", "depth estimation (Depth Anything / DPT)",
                    "depth estimation", "Depth Anything / DPT",
                    "MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES")
_model_folder, _load = DEPTH.folder, DEPTH.load


def clear_depth_models() -> None:
    """Forget the loaded depth models (tests; freeing GPU memory between runs)."""
    DEPTH.clear()


def estimate_depth(images: np.ndarray, model: str | os.PathLike, device: str = "cpu"
                   ) -> np.ndarray:
    """Relative inverse depth of uint8 RGB `images` (N, H, W, 3) as float32 (N, H, W) in 0..1
    (1 = nearest), normalised over the whole call and resized to the input size.

    `model`: a local folder with a transformers depth model and its image processor. Raises
    EngineConfigError for a missing folder or one that does not hold a depth model.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    n, height, width = images.shape[:3]
    if n == 0:
        return np.zeros((0, height, width), np.float32)
    processor, net = _load(_model_folder(model), device)

    import torch

    maps = []
    with torch.inference_mode():
        for start in range(0, n, _BATCH):
            batch = [frame for frame in images[start:start + _BATCH]]
            inputs = processor(images=batch, return_tensors="pt")
            pixels = inputs["pixel_values"].to(device=net.device, dtype=net.dtype)
            predicted = net(pixel_values=pixels).predicted_depth
            if predicted.ndim == 3:
                predicted = predicted[:, None]
            resized = torch.nn.functional.interpolate(
                predicted.float(), size=(height, width), mode="bicubic", align_corners=False)
            maps.append(resized[:, 0].cpu().numpy())
    depth = np.concatenate(maps, axis=0).astype(np.float32)
    low, high = float(depth.min()), float(depth.max())
    if not np.isfinite(low) or not np.isfinite(high) or high - low < 1e-12:
        # A constant (or broken) prediction says nothing about depth: a flat plane.
        return np.full(depth.shape, 0.5, np.float32)
    return ((depth - low) / (high - low)).astype(np.float32)


def depth_model_identity(model: str | os.PathLike) -> dict[str, Any]:
    """What about the depth model changes its output, for content keys (no paths)."""
    return DEPTH.identity(model)

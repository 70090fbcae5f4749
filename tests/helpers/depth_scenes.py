"""Synthetic scenes whose depth is known, and a tiny random depth model, for the 2.5D camera
tests: a textured background plane with a textured card in front of it (nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

W, H = 64, 48
NEAR, FAR = 0.8, 0.2  # depth map values of the two planes (1 = nearest)


def texture(seed: int, width: int = W, height: int = H, sigma: float = 1.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = (rng.random((height, width, 3)) * 255).astype(np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), sigma)


def two_planes(width: int = W, height: int = H) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image uint8 (H, W, 3), depth float32 (H, W) 0..1, card mask): a card in the middle."""
    card = np.zeros((height, width), bool)
    card[height * 14 // 48: height * 34 // 48, width * 20 // 64: width * 44 // 64] = True
    image = np.where(card[..., None], texture(2, width, height), texture(1, width, height) // 2)
    depth = np.where(card, NEAR, FAR).astype(np.float32)
    return image.astype(np.uint8), depth, card


def write_two_planes(folder: Path, bits: int = 16, width: int = 96, height: int = 64
                     ) -> tuple[Path, Path]:
    """scene.png and scene_depth.png (8- or 16-bit grayscale, white = near) in `folder`, at the
    smallest frame a storyboard allows by default (96x64)."""
    image, depth, _ = two_planes(width, height)
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "scene.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    scale, dtype = (65535, np.uint16) if bits == 16 else (255, np.uint8)
    cv2.imwrite(str(folder / "scene_depth.png"), np.rint(depth * scale).astype(dtype))
    return folder / "scene.png", folder / "scene_depth.png"


def save_tiny_depth_model(folder: Path) -> Path:
    """A randomly initialised Depth Anything (DINOv2 backbone) of a few thousand weights, with
    its image processor, saved with save_pretrained: loads like a real one, offline."""
    import torch
    from transformers import (DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config,
                              DPTImageProcessor)

    backbone = Dinov2Config(hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=32, patch_size=14, image_size=28,
                            out_features=["stage1", "stage2"], reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=16,
                                 neck_hidden_sizes=[8, 16], fusion_hidden_size=8,
                                 head_hidden_size=8, reassemble_factors=[4, 2])
    torch.manual_seed(0)
    DepthAnythingForDepthEstimation(config).save_pretrained(folder)
    DPTImageProcessor(size={"height": 28, "width": 28}, keep_aspect_ratio=False,
                      ensure_multiple_of=14).save_pretrained(folder)
    return folder

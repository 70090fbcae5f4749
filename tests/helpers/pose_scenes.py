"""Pose test material: a tiny random-weight ViTPose saved like a real one (offline), and a
synthetic performer whose COCO keypoints are known, with frames that show it (a white head
square, grey limbs), so face crops and skeleton drawings can be scored."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def save_tiny_pose_model(folder: Path, experts: int = 1) -> Path:
    """A randomly initialised ViTPose (17 COCO keypoints, 64x48 input, two layers) and its
    image processor, saved with save_pretrained: loads like a real one, offline. `experts` > 1:
    a ViTPose+ (mixture of experts, which needs a dataset index per image)."""
    import torch
    from transformers import VitPoseBackboneConfig, VitPoseConfig, VitPoseForPoseEstimation
    from transformers.models.vitpose.image_processing_pil_vitpose import VitPoseImageProcessorPil

    backbone = VitPoseBackboneConfig(image_size=[64, 48], patch_size=[16, 16], hidden_size=32,
                                     num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, out_indices=[2],
                                     **({"num_experts": experts, "part_features": 16}
                                        if experts > 1 else {}))
    torch.manual_seed(0)
    VitPoseForPoseEstimation(VitPoseConfig(backbone_config=backbone, num_labels=17)
                             ).save_pretrained(folder)
    VitPoseImageProcessorPil(size={"height": 64, "width": 48}).save_pretrained(folder)
    return folder


def performer(x: float, y: float, scale: float = 1.0) -> np.ndarray:
    """COCO keypoints (17, 3) of a standing figure whose nose is at (x, y); all confident.
    Eyes 6 px apart, ears 14 px, shoulders 24 px at scale 1."""
    s = scale
    offsets = [(0, 0), (-3, -3), (3, -3), (-7, -2), (7, -2),  # nose, eyes, ears
               (-12, 14), (12, 14), (-16, 28), (16, 28), (-18, 42), (18, 42),  # arms
               (-8, 44), (8, 44), (-9, 62), (9, 62), (-10, 80), (10, 80)]  # hips, legs
    return np.array([[x + dx * s, y + dy * s, 0.9] for dx, dy in offsets], np.float32)


def performer_frames(n: int, width: int = 128, height: int = 112) -> tuple[np.ndarray, np.ndarray]:
    """`n` frames of a figure walking right (uint8 (n, H, W, 3)) and its keypoints (n, 17, 3):
    the head is a white 14 px square on the head keypoints, the body grey."""
    import cv2

    frames = np.zeros((n, height, width, 3), np.uint8)
    points = np.stack([performer(30 + 6 * i, 18) for i in range(n)])
    for frame, p in zip(frames, points):
        for a, b in ((5, 7), (7, 9), (6, 8), (8, 10), (5, 11), (6, 12), (11, 13), (13, 15),
                     (12, 14), (14, 16), (5, 6), (11, 12)):
            cv2.line(frame, tuple(int(v) for v in p[a, :2]), tuple(int(v) for v in p[b, :2]),
                     (120, 120, 120), 3)
        cx, cy = p[:5, :2].mean(axis=0)
        frame[int(cy) - 7:int(cy) + 7, int(cx) - 7:int(cx) + 7] = 255
    return frames, points


def save_tiny_person_detector(folder: Path, labels: tuple[str, ...] = ("person", "dog")) -> Path:
    """A randomly initialised YOLOS object detector (two layers, 64 px input) whose labels are
    `labels`, with its image processor, saved with save_pretrained: loads like a real one."""
    import torch
    from transformers import YolosConfig, YolosForObjectDetection
    from transformers.models.yolos.image_processing_pil_yolos import YolosImageProcessorPil

    config = YolosConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, image_size=[64, 64], patch_size=16,
                         num_detection_tokens=5, id2label=dict(enumerate(labels)),
                         label2id={name: i for i, name in enumerate(labels)})
    torch.manual_seed(0)
    YolosForObjectDetection(config).save_pretrained(folder)
    YolosImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 96}).save_pretrained(folder)
    return folder

"""The performer's box in each frame, from a local transformers object detector (`pose.detector`:
RT-DETR, DETR, YOLOS, ... saved with save_pretrained; nothing downloads): where the pose model's
first pass looks, instead of the whole frame.

ViTPose sees its box at 256x192 pixels: a performer filling a tenth of a wide frame is a few
dozen pixels tall there, too small for its keypoints, unless the box is found first (the
top-down recipe ViTPose was trained and evaluated with). One performer per clip: the largest
person in a frame is taken; a frame without one above THRESHOLD falls back to the whole frame.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..base import EngineConfigError
from ..local_models import HelperModel, model_identity

__all__ = ["person_boxes", "detector_folder", "detector_identity", "THRESHOLD"]

THRESHOLD = 0.5  # a detection's score needed to count as the performer
_BATCH = 8
_KINDS = "object detection (RT-DETR, DETR, YOLOS)"
DETECTOR = HelperModel("pose-detector", "pose.detector", _KINDS, "object detection", _KINDS,
                       "MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES")
detector_folder = DETECTOR.folder


def _person_label(folder: Path, id2label: dict | None) -> int:
    labels = {str(name).lower(): int(i) for i, name in (id2label or {}).items()}
    if "person" not in labels:
        raise EngineConfigError(f"{DETECTOR.key}={str(folder)!r}: the detector has no 'person' label "
                                f"(labels: {', '.join(sorted(labels)[:8]) or 'none'}); give a "
                                "detector trained on COCO, whose labels include person")
    return labels["person"]


def detector_identity(model: str | os.PathLike) -> dict[str, Any]:
    """The detector's identity for content keys; EngineConfigError for a folder that is not a
    transformers model or whose labels have no `person` (read from config.json, no load)."""
    folder = detector_folder(model)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    _person_label(folder, config.get("id2label"))
    return model_identity(folder, config)


def _load(folder: Path, device: str) -> tuple[Any, Any, int]:
    processor, net = DETECTOR.load(folder, device)
    return processor, net, _person_label(folder, net.config.id2label)


def person_boxes(images: np.ndarray, model: str | os.PathLike, device: str = "cpu"
                 ) -> list[list[float] | None]:
    """Per uint8 RGB image (N, H, W, 3): the COCO box (x, y, w, h) of its largest person
    scoring at least THRESHOLD, or None."""
    import torch

    processor, net, person = _load(detector_folder(model), device)
    height, width = images.shape[1:3]
    boxes: list[list[float] | None] = []
    with torch.inference_mode():
        for start in range(0, len(images), _BATCH):
            batch = list(images[start:start + _BATCH])
            inputs = processor(images=batch, return_tensors="pt")
            pixels = inputs["pixel_values"].to(device=net.device, dtype=net.dtype)
            extra = {k: v.to(net.device) for k, v in inputs.items() if k == "pixel_mask"}
            outputs = net(pixel_values=pixels, **extra)
            found = processor.post_process_object_detection(
                outputs, threshold=THRESHOLD, target_sizes=[(height, width)] * len(batch))
            for result in found:
                best, area = None, 0.0
                for box, label in zip(result["boxes"].tolist(), result["labels"].tolist()):
                    left, top = max(0.0, box[0]), max(0.0, box[1])
                    right, bottom = min(float(width), box[2]), min(float(height), box[3])
                    size = (right - left) * (bottom - top)
                    if label == person and right > left and bottom > top and size > area:
                        best, area = [left, top, right - left, bottom - top], size
                boxes.append(best)
    return boxes

"""Body keypoints of the performer in video frames, with a local transformers ViTPose model.

Used by control videos of kind `pose` and by wan_animate shots, whose pose video is drawn from
the driving video's keypoints (and whose face crop follows the head keypoints). Like every
model, the weights come from a local folder (`pose.model` in conf/config.yaml, a ViTPose model
and its image processor saved with save_pretrained): nothing downloads.

ViTPose is a top-down model: it finds the keypoints of one person inside a given box. reelforge
follows one performer in two batched passes: the first looks at the performer's box from the
optional person detector (`pose.detector`, engine.pose.detect), else at the whole frame; the
second at the box around the keypoints the first found with confidence (the model's input is
256x192, so a performer filling a quarter of a 1280x720 frame is seen at a quarter of the
resolution in a whole-frame pass and at full resolution in the second). Frames where the first
pass finds fewer than MIN_POINTS confident keypoints keep its result. The performer should be
the main subject of the clip (the largest person, with a detector); several people are not
separated.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..local_models import HelperModel
from . import REVISION

__all__ = ["estimate_poses", "pose_model_identity", "clear_pose_models", "MIN_SCORE",
           "COCO_KEYPOINTS", "PoseModels"]

# COCO's 17 body keypoints, the order ViTPose (and COCO-WholeBody's first 17) predict.
COCO_KEYPOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
                  "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
                  "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")
MIN_SCORE = 0.3  # a keypoint below this confidence is not drawn nor used for boxes
MIN_POINTS = 4  # confident keypoints needed for the second pass's box
_BATCH = 16  # frames per forward pass: bounds memory for long clips
_KEY, _KINDS = "pose.model", "ViTPose pose estimation"


@dataclass(frozen=True)
class PoseModels:
    """The configured pose model (`pose.model`) and optional person detector
    (`pose.detector`): what estimate_poses takes where it takes a folder."""

    model: Path
    detector: Path | None = None

    @classmethod
    def of(cls, model: str | os.PathLike | None, detector: str | os.PathLike | None = None
           ) -> "PoseModels | None":
        return cls(Path(model), Path(detector) if detector else None) if model else None


POSE = HelperModel("pose", _KEY, _KINDS, "pose estimation", "ViTPose",
                   "MODEL_FOR_POSE_ESTIMATION_MAPPING_NAMES")
_model_folder, _load = POSE.folder, POSE.load


def clear_pose_models() -> None:
    """Forget the loaded pose models (tests; freeing GPU memory between runs)."""
    POSE.clear()


def pose_model_identity(model: str | os.PathLike | PoseModels,
                        detector: str | os.PathLike | None = None) -> dict[str, Any]:
    """What about the pose model (and the person detector, when one is set) changes its output,
    for content keys (no paths), with the code's REVISION (keypoints and their drawing).
    Raises EngineConfigError for a folder that cannot serve."""
    if isinstance(model, PoseModels):
        model, detector = model.model, model.detector
    identity = {**POSE.identity(model), "revision": REVISION}
    if detector:
        from .detect import detector_identity

        identity["detector"] = detector_identity(detector)
    return identity


def keypoint_box(points: np.ndarray, width: int, height: int) -> list[float] | None:
    """The COCO box (x, y, w, h) around the confident keypoints of (K, 3) `points`, or None
    when fewer than MIN_POINTS are confident. The processor pads it by 1.25 itself."""
    sure = points[points[:, 2] >= MIN_SCORE, :2]
    if len(sure) < MIN_POINTS:
        return None
    left, top = np.clip(sure.min(axis=0), 0, [width - 1, height - 1])
    right, bottom = np.clip(sure.max(axis=0), 0, [width - 1, height - 1])
    # A head-to-hip box misses the hands' reach: grow it by a tenth of its size on each side.
    grow = 0.1 * max(right - left, bottom - top, 8.0)
    left, top = max(0.0, left - grow), max(0.0, top - grow)
    right, bottom = min(width - 1.0, right + grow), min(height - 1.0, bottom + grow)
    return [float(left), float(top), float(right - left + 1), float(bottom - top + 1)]


def _run(processor: Any, net: Any, images: list[np.ndarray], boxes: list[list[float]]
         ) -> np.ndarray:
    import torch

    inputs = processor(images=images, boxes=[[b] for b in boxes], return_tensors="pt")
    pixels = inputs["pixel_values"].to(device=net.device, dtype=net.dtype)
    kwargs = {}
    if getattr(net.config.backbone_config, "num_experts", 1) > 1:
        # ViTPose+ (mixture of experts): expert 0 is COCO's body keypoints.
        kwargs["dataset_index"] = torch.zeros(len(images), dtype=torch.long, device=net.device)
    outputs = net(pixel_values=pixels, **kwargs)
    outputs.heatmaps = outputs.heatmaps.float().cpu()
    found = processor.post_process_pose_estimation(outputs, boxes=[[b] for b in boxes])
    return np.stack([np.concatenate([person[0]["keypoints"].numpy(),
                                     person[0]["scores"].numpy()[:, None]], axis=1)
                     for person in found]).astype(np.float32)


def estimate_poses(images: np.ndarray, model: str | os.PathLike | PoseModels,
                   device: str = "cpu") -> np.ndarray:
    """Keypoints of the performer in uint8 RGB `images` (N, H, W, 3): float32 (N, K, 3) rows of
    (x, y, confidence) in the images' pixels; K is the model's keypoint count (17 for COCO;
    the first 17 are COCO's body keypoints in every ViTPose variant). A point outside the frame
    is put on its edge with confidence 0."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    n, height, width = images.shape[:3]
    detector = model.detector if isinstance(model, PoseModels) else None
    folder = model.model if isinstance(model, PoseModels) else model
    processor, net = _load(_model_folder(folder), device)

    import torch

    whole = [0.0, 0.0, float(width), float(height)]
    results = []
    with torch.inference_mode():
        for start in range(0, n, _BATCH):
            batch = list(images[start:start + _BATCH])
            looks = [whole] * len(batch)
            if detector is not None:
                from .detect import person_boxes

                looks = [box or whole for box in person_boxes(np.stack(batch), detector, device)]
            first = _run(processor, net, batch, looks)
            boxes = [keypoint_box(points, width, height) for points in first]
            refine = [i for i, box in enumerate(boxes) if box is not None]
            if refine:
                second = _run(processor, net, [batch[i] for i in refine],
                              [boxes[i] for i in refine])
                first[refine] = second
            results.append(first)
    if not results:
        return np.zeros((0, 17, 3), np.float32)
    points = np.concatenate(results, axis=0)
    # The processor pads the box by a quarter, so a guess may land outside the frame: a point
    # nobody can see there is not confident, and stays on the frame's edge.
    outside = ((points[..., 0] < 0) | (points[..., 0] >= width)
               | (points[..., 1] < 0) | (points[..., 1] >= height))
    points[..., 2][outside] = 0.0
    points[..., 0] = np.clip(points[..., 0], 0, width - 1)
    points[..., 1] = np.clip(points[..., 1], 0, height - 1)
    return points

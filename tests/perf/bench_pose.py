"""Benchmark for engine.pose: what reading a performer's pose costs on this machine's CPU, at
the size of the released ViTPose-B (random weights; the cost does not depend on them).

Run from the repository root:

    python tests/perf/bench_pose.py [--frames 16] [--threads 2] [--size 832x480]

Reports seconds per frame for the two-pass estimate reelforge runs (whole frame, then the
keypoint box) against one whole-frame pass measured in the same run (the baseline; the ratio is
what the second pass costs), and the drawing and face-track time per frame.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.pose import estimate  # noqa: E402
from engine.pose.draw import draw_pose  # noqa: E402
from engine.pose.face import face_video  # noqa: E402
from tests.helpers.pose_scenes import performer  # noqa: E402


def save_vitpose_base(folder: Path) -> Path:
    """ViTPose-B's shapes (ViT-B/16 backbone, 256x192 input, 17 keypoints), random weights."""
    import torch
    from transformers import VitPoseBackboneConfig, VitPoseConfig, VitPoseForPoseEstimation
    from transformers.models.vitpose.image_processing_pil_vitpose import VitPoseImageProcessorPil

    torch.manual_seed(0)
    backbone = VitPoseBackboneConfig(image_size=[256, 192], patch_size=[16, 16],
                                     out_indices=[12])
    VitPoseForPoseEstimation(VitPoseConfig(backbone_config=backbone, num_labels=17)
                             ).save_pretrained(folder)
    VitPoseImageProcessorPil().save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", default="832x480")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.split("x"))
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (args.frames, height, width, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        model = save_vitpose_base(Path(tmp) / "vitpose-b")
        estimate.estimate_poses(frames[:1], model)  # load once, outside the timing
        processor, net = estimate._load(estimate._model_folder(model), "cpu")
        started = time.perf_counter()
        with torch.inference_mode():
            for start in range(0, len(frames), 16):
                batch = list(frames[start:start + 16])
                estimate._run(processor, net, batch, [[0.0, 0.0, float(width), float(height)]]
                              * len(batch))
        one_pass = (time.perf_counter() - started) / len(frames)
        # Two passes: force the second on every frame (random weights are rarely sure).
        real_box = estimate.keypoint_box
        estimate.keypoint_box = lambda points, w, h: [w * 0.3, h * 0.1, w * 0.4, h * 0.8]
        try:
            started = time.perf_counter()
            estimate.estimate_poses(frames, model)
            two_pass = (time.perf_counter() - started) / len(frames)
        finally:
            estimate.keypoint_box = real_box
    points = np.stack([performer(width / 2 + i, height / 4, scale=height / 160)
                       for i in range(len(frames))])
    started = time.perf_counter()
    for p in points:
        draw_pose(p, width, height)
    face_video(list(frames), 512, keypoints=points)
    drawing = (time.perf_counter() - started) / len(frames)
    print(f"pose at {width}x{height}, {args.frames} frames, {args.threads} threads, ViTPose-B "
          f"shapes: one pass {one_pass:.3f} s/frame (baseline), two passes "
          f"{two_pass:.3f} s/frame ({two_pass / one_pass:.2f}x), drawing + face track "
          f"{drawing * 1000:.1f} ms/frame; an 81-frame animate segment: "
          f"{81 * (two_pass + drawing):.1f} s")


if __name__ == "__main__":
    main()

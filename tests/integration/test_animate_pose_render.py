"""An animate shot with a performer video and `pose.model` (a tiny random ViTPose), rendered
through the real flow on a tiny WanAnimatePipeline: the pipeline's pose video is the skeleton
drawn from the model's keypoints of the driving frames (not the frames themselves), its face
video is cropped at the head keypoints, the manifest names the pose model, the skeleton is
written to renders/NAME/control/<shot>.mp4, and a prompt edit re-renders without running the
pose model again (the keypoints are cached apart from the segment)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from engine.pose import estimate as pose_estimate
from engine.pose.draw import draw_pose
from engine.pose.estimate import estimate_poses
from flows.config.settings import RenderSettings
from flows.render import EXIT_OK, run
from stages.media.video_io import read_frames
from stages.render.source_video import video_slice
from tests.helpers import tiny_pipelines as tiny
from tests.helpers.control_clips import write_frames
from tests.helpers.pose_scenes import performer_frames, save_tiny_pose_model
from tests.helpers.synthetic import write_png

torch.set_num_threads(1)
pytestmark = pytest.mark.usefixtures("prefect_harness")

STORYBOARD = """
fps: 16
resolution: 64x64
defaults: {steps: 1, cfg: 1.0}
shots:
  - {id: a, image: keeper.png, prompt: "the keeper dances", frames: 9, driving_video: dance.mkv}
"""


def test_the_pose_video_is_drawn_from_the_performer(tmp_path, monkeypatch, capsys):
    from diffusers import WanAnimatePipeline

    models = tmp_path / "models"
    animate = tiny.save_wan_animate(models / "wan-animate", 16)
    pose_model = save_tiny_pose_model(models / "vitpose")
    calls: list[dict] = []
    original = WanAnimatePipeline.__call__
    monkeypatch.setattr(WanAnimatePipeline, "__call__",
                        lambda pipe, *a, **k: calls.append(k) or original(pipe, *a, **k))

    root = tmp_path / "p"
    root.mkdir()
    write_png(root / "keeper.png", 64, 64, seed=2)
    frames, _ = performer_frames(12, 128, 112)
    write_frames(root / "dance.mkv", frames, fps=16)
    (root / "ep.yaml").write_text(STORYBOARD)
    out = tmp_path / "renders"
    settings = RenderSettings(
        storyboard=str(root / "ep.yaml"), output_dir=str(out), post=[], retry_delay=0.0,
        retries=0, workers=1, pose={"model": str(pose_model)},
        engine={"name": "wan_animate", "model": str(animate), "options": {}, "params": {}})
    assert run(settings) == EXIT_OK

    [kwargs] = calls
    driving = video_slice(root / "dance.mkv", 0.0, 9, 16, 64, 64)
    expected = [draw_pose(p, 64, 64) for p in estimate_poses(driving, pose_model)]
    pose = [np.asarray(f) for f in kwargs["pose_video"]]
    assert len(pose) == 9 and all(np.array_equal(p, e) for p, e in zip(pose, expected))
    assert not np.array_equal(pose[0], driving[0])
    assert {f.size for f in kwargs["face_video"]} == {(16, 16)}
    manifest = json.loads((out / "ep" / "manifest.json").read_text())
    [segment] = manifest["shots"][0]["segments"]
    assert segment["pose_model"]["model_type"] == "vitpose" and segment["engine"] == "wan_animate"
    shown = np.stack(list(read_frames(out / "ep" / "control" / "a.mp4")))
    assert shown.shape == (9, 64, 64, 3)
    assert np.abs(shown.astype(int) - np.stack(expected)).mean() < 12  # H.264 of thin lines

    capsys.readouterr()
    assert run(replace(settings, dry_run=True)) == EXIT_OK
    assert "pose: a reads the performer in dance.mkv with pose.model (cached)" in \
        capsys.readouterr().out

    runs = []
    real = pose_estimate.estimate_poses
    monkeypatch.setattr(pose_estimate, "estimate_poses",
                        lambda *a, **k: runs.append(1) or real(*a, **k))
    (root / "ep.yaml").write_text(STORYBOARD.replace("dances", "bows"))
    assert run(settings) == EXIT_OK
    assert len(calls) == 2 and runs == []  # re-rendered; the keypoints came from the cache
    assert all(np.array_equal(np.asarray(a), np.asarray(b))
               for a, b in zip(calls[1]["pose_video"], kwargs["pose_video"]))

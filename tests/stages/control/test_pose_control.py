"""`control: {kind: pose}` with a local pose model (a tiny random ViTPose): validation accepts
it, the model's identity is in the segment keys, and a render through the flow writes the
skeleton video to renders/NAME/control/<shot>.mp4 and gives it to the engine."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from engine.preview import PREVIEW_SPEC
from engine.pose.draw import draw_pose
from engine.pose.estimate import PoseModels, estimate_poses
from flows.config.settings import RenderSettings
from flows.render import EXIT_OK, run
from stages.control.clip import sampled_frames
from stages.media.video_io import read_frames, video_info
from stages.plan.build import build_plan
from stages.storyboard.validate import ValidateOptions, validate_storyboard
from tests.helpers.boards import ENGINE, PARAMS
from tests.helpers.pose_scenes import performer_frames, save_tiny_pose_model
from tests.helpers.control_clips import write_frames

torch.set_num_threads(1)

STORYBOARD = """
fps: 8
resolution: 64x64
shots:
  - id: s05
    prompt: "a dancer"
    duration: 1s
    control: {video: clips/dance.mkv, kind: pose, strength: 1.0}
  - id: s06
    prompt: "the bow"
    duration: 1s
"""


@pytest.fixture(scope="module")
def pose_model(tmp_path_factory):
    return save_tiny_pose_model(tmp_path_factory.mktemp("pose") / "vitpose")


def episode(tmp_path):
    (tmp_path / "clips").mkdir(exist_ok=True)
    frames, _ = performer_frames(12, 128, 112)
    write_frames(tmp_path / "clips" / "dance.mkv", frames, fps=8)
    (tmp_path / "ep.yaml").write_text(STORYBOARD)
    return tmp_path / "ep.yaml"


def test_pose_control_validates_and_keys_the_model(tmp_path, pose_model):
    path = episode(tmp_path)
    vs = validate_storyboard(path, PREVIEW_SPEC, ValidateOptions(pose_model=str(pose_model)))
    job = build_plan(vs, dict(ENGINE), dict(PARAMS)).shots[0].segments[0]
    assert job.control.kind == "pose" and job.control.model["model_type"] == "vitpose"
    assert job.control_model == PoseModels(pose_model)


@pytest.mark.usefixtures("prefect_harness")
def test_pose_control_renders_the_skeleton(tmp_path, pose_model, capsys):
    path = episode(tmp_path)
    out = tmp_path / "renders"
    settings = RenderSettings(storyboard=str(path), output_dir=str(out),
                              cache_dir=str(tmp_path / "cache"), post=[], retry_delay=0.0,
                              retries=0, engine={"name": "preview", "params": {}},
                              pose={"model": str(pose_model)})
    assert run(settings) == EXIT_OK
    control = out / "ep" / "control" / "s05.mp4"
    assert video_info(control).frames == 9
    # What the engine was given: the tiny model's keypoints drawn as the skeleton. Strength 1:
    # the preview's frames are the control frames.
    source = np.stack(list(sampled_frames(path.parent / "clips" / "dance.mkv", 0, 9, 8, 64, 64)))
    drawn = np.stack([draw_pose(p, 64, 64) for p in estimate_poses(source, pose_model)])
    shot = np.stack(list(read_frames(out / "ep" / "shots" / "s05.mp4")))
    assert drawn.max() > 0  # the tiny model is sure of some points: there is a skeleton
    assert np.abs(shot.astype(int) - drawn).mean() < 12  # H.264 of sparse coloured lines
    manifest = json.loads((out / "ep" / "manifest.json").read_text())
    assert manifest["segments_rendered"] >= 2
    # A dry run says what the shot is given, and that it is extracted already.
    assert run(replace(settings, dry_run=True)) == EXIT_OK
    assert "control: s05 pose of dance.mkv from 0s at strength 1 (cached)" in \
        capsys.readouterr().out


def test_the_control_model_runs_on_the_engines_device(tmp_path, pose_model, monkeypatch):
    """A GPU worker extracts on its GPU: render_segment hands the engine's device to the
    extraction (and to an animate shot's pose model, the same way)."""
    from engine.registry import get_engine
    from stages.control import clip as control_clip
    from stages.control import extract
    from stages.render.steps import render_segment
    from stages.store.cache import CacheStore

    path = episode(tmp_path)
    vs = validate_storyboard(path, PREVIEW_SPEC, ValidateOptions(pose_model=str(pose_model)))
    job = build_plan(vs, dict(ENGINE), dict(PARAMS)).shots[0].segments[0]
    engine = get_engine("preview")
    engine.device = "cuda:3"  # what a diffusers engine on the fourth GPU says
    seen = []
    monkeypatch.setattr(control_clip, "extractor",
                        lambda kind, model, device: seen.append((kind, device)) or extract.gray)
    render_segment(job, None, engine, CacheStore(tmp_path / "cache"))
    assert seen == [("pose", "cuda:3")]

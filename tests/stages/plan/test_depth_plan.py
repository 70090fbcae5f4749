"""Planning shots with depth: the depth enters the segment keys only where a shot uses it, and
storyboards without depth keep the keys they had before 2.5D moves existed."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engine.base import CameraState
from engine.preview import PREVIEW_SPEC, PreviewEngine
from flows.config.settings import post_presets
from stages.plan.build import build_plan
from stages.plan.camera import camera_path
from stages.render.depth_input import load_depth
from stages.storyboard.schema.camera import CameraMove
from stages.storyboard.validate import ValidateOptions, validate_storyboard
from tests.helpers.boards import write_board
from tests.helpers.depth_scenes import save_tiny_depth_model, write_two_planes

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[3]
# storyboards/ep01.yaml's plan key before the 2.5D camera existed (same engine and params).
EP01_PLAN_KEY = "378e1d0ae4198194a0ae76e3df60c5b3fe228e72484f6415a87477ad8ff67848"


def _plan(path: Path, **options):
    vs = validate_storyboard(path, PREVIEW_SPEC, ValidateOptions(**options))
    return build_plan(vs, PreviewEngine().identity())


def _keys(plan) -> list[str]:
    return [job.key for shot in plan.shots for job in shot.segments]


def _board(folder: Path, **shot) -> Path:
    write_two_planes(folder)
    data = {"id": "s01", "prompt": "a card before a wall", "image": "scene.png", "frames": 9,
            "camera": {"zoom": 0.1}}
    data.update(shot)
    return write_board(folder, [data], resolution="96x64")


def test_ep01_keeps_its_plan_key():
    plan = _plan(REPO / "storyboards" / "ep01.yaml", post_presets=post_presets())
    assert plan.key == EP01_PLAN_KEY
    assert all(job.depth is None for shot in plan.shots for job in shot.segments)


def test_2d_paths_keep_their_5_value_key_tuples():
    path = camera_path(CameraMove(zoom=0.2, pan_x=0.1), 0, 5, 16, 0.25)
    assert all(len(state.as_tuple()) == 5 for state in path)
    deep = camera_path(CameraMove(dolly=0.2), 0, 5, 16, 0.25)
    assert deep[-1].dolly == pytest.approx(0.2) and len(deep[-1].as_tuple()) == 12


def test_depth_bytes_enter_the_keys_of_shots_that_use_depth(tmp_path):
    plain = _keys(_plan(_board(tmp_path / "a")))
    with_depth = _plan(_board(tmp_path / "b", depth="scene_depth.png"))
    assert _keys(with_depth) != plain
    job = with_depth.shots[0].segments[0]
    assert job.depth.file.name == "scene_depth.png" and job.depth_model is None
    # Other depth bytes, other keys; the same bytes elsewhere, the same keys.
    folder = tmp_path / "c"
    _board(folder, depth="scene_depth.png")
    cv2.imwrite(str(folder / "scene_depth.png"), np.full((64, 96), 40000, np.uint16))
    assert _keys(_plan(folder / "ep.yaml")) != _keys(with_depth)
    assert _keys(_plan(_board(tmp_path / "d", depth="scene_depth.png"))) == _keys(with_depth)
    depth = load_depth(job.depth, job.depth_model, 96, 64)
    assert depth.shape == (64, 96) and depth.max() == pytest.approx(0.8, abs=1e-3)


def test_estimated_depth_keys_the_model_identity_not_its_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = save_tiny_depth_model(tmp_path / "models" / "tiny")
    plan = _plan(_board(tmp_path / "a", depth="estimate", camera={"dolly": 0.2}),
                 depth_model=str(model))
    job = plan.shots[0].segments[0]
    assert dict(job.depth.model)["model_type"] == "depth_anything"
    assert job.depth_model == model
    # The same model in another folder: the same keys.
    moved = save_tiny_depth_model(tmp_path / "elsewhere" / "tiny")
    again = _plan(_board(tmp_path / "b", depth="estimate", camera={"dolly": 0.2}),
                  depth_model=str(moved))
    assert _keys(again) == _keys(plan)
    depth = load_depth(job.depth, job.depth_model, 96, 64)
    assert depth.shape == (64, 96) and depth.dtype == np.float32
    assert depth.min() == 0.0 and depth.max() == 1.0
    assert CameraState(dolly=0.2).uses_depth()

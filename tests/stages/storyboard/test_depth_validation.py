"""Storyboard checks of depth maps and 2.5D camera keys: every error names the file, the key
path, the bad value and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.preview import PREVIEW_SPEC
from stages.storyboard.problems import StoryboardInvalid
from stages.storyboard.validate import ValidateOptions, validate_storyboard
from tests.helpers.boards import write_board
from tests.helpers.depth_scenes import write_two_planes


def _problems(path: Path, **options) -> list[str]:
    with pytest.raises(StoryboardInvalid) as info:
        validate_storyboard(path, PREVIEW_SPEC, ValidateOptions(**options))
    return [f"{p.file}|{p.key_path}|{p.message}" for p in info.value.problems]


def _board(tmp_path: Path, **shot) -> Path:
    write_two_planes(tmp_path)
    data = {"id": "s01", "prompt": "a card before a wall", "image": "scene.png", "frames": 9}
    data.update(shot)
    return write_board(tmp_path, [data], resolution="96x64")


def test_3d_key_without_depth_names_the_key_and_the_fix(tmp_path):
    path = _board(tmp_path, camera={"dolly": 0.3})
    [problem] = _problems(path)
    assert str(path) in problem and "shots[0].camera.dolly" in problem
    assert "depth: assets/" in problem and "white = near" in problem


def test_keyframed_3d_key_without_depth(tmp_path):
    path = _board(tmp_path, camera=[{"at": 0, "pan_x": 0.0}, {"at": 0.5, "orbit": 10}])
    [problem] = _problems(path)
    assert "shots[0].camera[1].orbit" in problem


def test_estimate_needs_a_model_and_an_image(tmp_path):
    path = _board(tmp_path, depth="estimate", camera={"truck": 0.1})
    [problem] = _problems(path)
    assert "shots[0].depth" in problem and "depth.model" in problem
    path = _board(tmp_path, depth="estimate", camera={"truck": 0.1}, image=None)
    problems = _problems(path, depth_model=str(tmp_path / "no_model"))
    assert any("has none" in p for p in problems)
    assert any("no such folder" in p for p in problems)


@pytest.mark.parametrize("name, content, expected", [
    ("text.png", b"not a picture", "not a readable image"),
    ("missing.png", None, "not found"),
])
def test_unreadable_depth_files(tmp_path, name, content, expected):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    path = _board(tmp_path, depth=name, camera={"dolly": 0.2})
    [problem] = _problems(path)
    assert "shots[0].depth" in problem and expected in problem and name in problem


def test_depth_outside_the_storyboard_folder_is_refused(tmp_path):
    outside = tmp_path / "elsewhere"
    write_two_planes(outside)
    path = _board(tmp_path / "board", depth="../elsewhere/scene_depth.png", camera={"dolly": 0.2})
    [problem] = _problems(path)
    assert "outside the storyboard's folder" in problem


@pytest.mark.parametrize("key, value, unit", [
    ("orbit", 200, "degrees"), ("dolly", 1.5, "subject distance"), ("aperture", -1, "sharp"),
])
def test_out_of_range_3d_values_name_their_unit(tmp_path, key, value, unit):
    path = _board(tmp_path, depth="scene_depth.png", camera={key: value})
    problems = _problems(path)
    assert any(f"shots[0].camera.{key}" in p and unit in p and str(value) in p for p in problems)


def test_a_valid_depth_shot_passes(tmp_path):
    path = _board(tmp_path, depth="scene_depth.png", camera={"dolly": 0.3, "aperture": 0.5})
    vs = validate_storyboard(path, PREVIEW_SPEC, ValidateOptions())
    assert vs.image_path("scene_depth.png") == (tmp_path / "scene_depth.png").resolve()

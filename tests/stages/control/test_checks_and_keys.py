"""`control:` in a storyboard: validation (engine, kind, file, start) and the segment keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.preview import PREVIEW_SPEC
from engine.registry import engine_spec
from stages.plan.build import build_plan
from stages.storyboard.problems import StoryboardInvalid
from stages.storyboard.validate import ValidateOptions, validate_storyboard
from tests.helpers.boards import ENGINE, PARAMS, write_board
from tests.helpers.control_clips import write_square_clip


def board(tmp_path: Path, control: dict | None, clip: bool = True, **shot) -> Path:
    if clip:
        write_square_clip(tmp_path / "dance.mp4", frames=16, fps=8)
    first = {"id": "s05", "prompt": "a dancer", "duration": "1s", **shot}
    if control is not None:
        first["control"] = control
    return write_board(tmp_path, [first, {"id": "s06", "prompt": "the end", "duration": "1s"}],
                       resolution="96x64", fps=8)


def problems(path: Path, spec=PREVIEW_SPEC, **options) -> list[str]:
    with pytest.raises(StoryboardInvalid) as info:
        validate_storyboard(path, spec, ValidateOptions(**options))
    return [str(p) for p in info.value.problems]


def test_an_engine_without_control_names_those_with_it(tmp_path):
    path = board(tmp_path, {"video": "dance.mp4", "kind": "canny"})
    [line] = problems(path, engine_spec("wan21_t2v"))
    assert "shots[0].control" in line and "wan21_t2v" in line
    assert "wan_vace" in line and "preview" in line and str(path) in line


def test_unknown_kind_suggests_the_nearest(tmp_path):
    [line] = problems(board(tmp_path, {"video": "dance.mp4", "kind": "cany"}))
    assert "shots[0].control.kind" in line and "did you mean 'canny'" in line


def test_missing_unreadable_and_outside_files(tmp_path):
    (tmp_path / "notes.mp4").write_text("not a video")
    [line] = problems(board(tmp_path, {"video": "notes.mp4", "kind": "gray"}))
    assert "control.video" in line and "not a readable video" in line
    [line] = problems(board(tmp_path, {"video": "nope.mp4", "kind": "gray"}))
    assert "not found" in line
    [line] = problems(board(tmp_path, {"video": "../../etc/x.mp4", "kind": "gray"}))
    assert "outside the storyboard's folder" in line


def test_start_past_the_end_of_the_clip(tmp_path):
    [line] = problems(board(tmp_path, {"video": "dance.mp4", "kind": "flow", "start": "3s"}))
    assert "control.start" in line and "3s" in line and "2s long" in line


def test_a_clip_shorter_than_the_shot_warns(tmp_path):
    vs = validate_storyboard(board(tmp_path, {"video": "dance.mp4", "kind": "flow",
                                              "start": "1.5s"}), PREVIEW_SPEC)
    assert any("last frame is held" in w for w in vs.warnings)


def test_pose_and_depth_need_their_models(tmp_path):
    [line] = problems(board(tmp_path, {"video": "dance.mp4", "kind": "pose"}))
    assert "shots[0].control.kind" in line and "pose.model" in line and "ViTPose" in line
    [line] = problems(board(tmp_path, {"video": "dance.mp4", "kind": "pose"}),
                      pose_model=str(tmp_path / "no-model"))
    assert "pose.model" in line and "no such folder" in line
    [line] = problems(board(tmp_path, {"video": "dance.mp4", "kind": "depth"}))
    assert "depth.model" in line
    [line] = problems(board(tmp_path, {"video": "dance.mp4", "kind": "depth"}),
                      depth_model=str(tmp_path / "no-model"))
    assert "depth.model" in line and "no such folder" in line


def plan(path: Path):
    return build_plan(validate_storyboard(path, PREVIEW_SPEC), dict(ENGINE), dict(PARAMS))


def test_keys_follow_the_control_settings_and_bytes(tmp_path):
    base = {"video": "dance.mp4", "kind": "canny", "strength": 0.8, "start": "0.5s"}
    without = plan(board(tmp_path / "a", None)).shots
    first = plan(board(tmp_path / "b", base)).shots
    job = first[0].segments[0]
    assert job.control.kind == "canny" and job.control.strength == 0.8
    assert job.control.start == 0.5 and job.control.shot_frames == first[0].frames
    assert job.key != without[0].segments[0].key
    assert first[1].segments[0].key == without[1].segments[0].key  # the other shot: untouched
    for change in ({"strength": 0.5}, {"kind": "gray"}, {"start": "1s"}):
        other = plan(board(tmp_path / str(change), {**base, **change})).shots[0]
        assert other.segments[0].key != job.key, change
    again = board(tmp_path / "c", base)
    write_square_clip(again.parent / "dance.mp4", frames=15, fps=8)  # other bytes
    assert plan(again).shots[0].segments[0].key != job.key


def test_control_from_defaults_reaches_every_shot(tmp_path):
    write_square_clip(tmp_path / "dance.mp4", frames=16, fps=8)
    path = write_board(tmp_path, [{"id": "a", "prompt": "p", "duration": "1s"}],
                       resolution="96x64", fps=8,
                       defaults={"control": {"video": "dance.mp4", "kind": "gray"}})
    assert plan(path).shots[0].segments[0].control.kind == "gray"

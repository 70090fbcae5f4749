"""Storyboard generation keys (steps, cfg, loras, source videos, fallback, camera apply):
validated against the engine's spec before anything loads, planned per segment, and part of
every content key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.registry import engine_spec
from stages.plan.build import build_plan
from stages.storyboard.problems import StoryboardInvalid
from stages.storyboard.validate import validate_storyboard
from stages.media.video_io import write_video

import numpy as np


def board(tmp_path: Path, shots: list[dict], **top) -> Path:
    path = tmp_path / "ep.yaml"
    path.write_text(yaml.safe_dump({"resolution": "64x64", "shots": shots, **top}))
    return path


def validated(path: Path, engine: str = "wan22_i2v_a14b"):
    return validate_storyboard(path, engine_spec(engine))


def problems(path: Path, engine: str) -> list[str]:
    with pytest.raises(StoryboardInvalid) as info:
        validated(path, engine)
    return [f"{p.key_path}: {p.message}" for p in info.value.problems]


def plan(path: Path, engine: str = "wan22_i2v_a14b", params=None):
    return build_plan(validated(path, engine), {"engine": engine}, params or {"steps": 30})


def lora(tmp_path: Path, name: str = "style.safetensors", data: bytes = b"lora") -> str:
    (tmp_path / name).write_bytes(data)
    return name


def test_keys_travel_per_segment_innermost_wins(tmp_path):
    path = board(tmp_path, [{
        "id": "a", "prompt": "p", "cfg": 4.0,
        "segments": [{"frames": 9}, {"frames": 9, "cfg": 1.5, "steps": 8, "cfg_2": 2.0}],
    }], defaults={"flow_shift": 5.0, "steps": 20})
    jobs = plan(path).shots[0].segments
    assert jobs[0].params == {"steps": 20, "cfg": 4.0, "flow_shift": 5.0}
    assert jobs[1].params == {"steps": 8, "cfg": 1.5, "cfg_2": 2.0, "flow_shift": 5.0}


def test_engine_config_params_are_defaults(tmp_path):
    path = board(tmp_path, [{"id": "a", "prompt": "p", "frames": 9}])
    job = plan(path, params={"steps": 40, "cfg": 3.5}).shots[0].segments[0]
    assert job.params == {"steps": 40, "cfg": 3.5}


def test_lora_strengths_and_file_bytes_are_in_the_key(tmp_path):
    name = lora(tmp_path)
    shot = {"id": "a", "prompt": "p", "frames": 9,
            "loras": [{"path": name, "strength": 1.0, "strength_2": 0.0}]}
    first = plan(board(tmp_path, [shot])).shots[0].segments[0]
    assert first.loras[0].path == str((tmp_path / name).resolve())
    assert (first.loras[0].strength, first.loras[0].strength_2) == (1.0, 0.0)
    shot["loras"][0]["strength_2"] = 0.5
    second = plan(board(tmp_path, [shot])).shots[0].segments[0]
    assert second.key != first.key
    shot["loras"][0]["strength_2"] = 0.0
    lora(tmp_path, data=b"retrained")
    third = plan(board(tmp_path, [shot])).shots[0].segments[0]
    assert third.key not in (first.key, second.key)


def test_unhonoured_keys_warn_and_name_the_shot(tmp_path):
    path = board(tmp_path, [{"id": "a", "prompt": "p", "frames": 9, "cfg_2": 2.0,
                             "embedded_guidance": 6.0}])
    warnings = validated(path, "wan21_t2v").warnings
    assert any("shot a" in w and "cfg_2" in w and "wan21_t2v" in w for w in warnings)
    assert any("embedded_guidance" in w for w in warnings)
    assert not [w for w in validated(path, "hunyuan_t2v").warnings
                if "embedded_guidance is ignored" in w]


def test_engine_requirements_and_modes(tmp_path):
    path = board(tmp_path, [{"id": "a", "prompt": "p", "frames": 9}])
    assert any("source_video" in p and "required by engine 'wan_v2v'" in p
               for p in problems(path, "wan_v2v"))
    assert any("driving_video" in p for p in problems(path, "wan_animate"))
    long_shot = board(tmp_path, [{"id": "a", "prompt": "p", "duration": "10s"}])
    assert any("text-to-video only" in p for p in problems(long_shot, "wan21_t2v"))
    assert validated(long_shot, "wan21_i2v").name == "ep"


def test_files_must_exist_and_stay_in_the_storyboard_folder(tmp_path):
    path = board(tmp_path, [{"id": "a", "prompt": "p", "frames": 9,
                             "loras": [{"path": "missing.safetensors"}],
                             "source_video": "../outside.mp4"}])
    found = problems(path, "wan_v2v")
    assert any(p.startswith("shots[0].loras[0].path") and "not found" in p for p in found)
    assert any(p.startswith("shots[0].source_video") for p in found)


def test_source_video_is_planned_and_keyed(tmp_path):
    frames = [np.full((32, 32, 3), i, np.uint8) for i in range(10)]
    write_video(tmp_path / "src.mkv", frames, 16, codec="ffv1")
    path = board(tmp_path, [{"id": "a", "prompt": "p", "frames": 9, "source_video": "src.mkv",
                             "denoise": 0.5}])
    job = plan(path, "wan_v2v").shots[0].segments[0]
    assert job.source_video == (tmp_path / "src.mkv").resolve()
    assert job.params["denoise"] == 0.5


def test_fallback_must_be_a_known_engine(tmp_path):
    path = board(tmp_path, [{"id": "a", "prompt": "p", "frames": 9}], fallback="svdd")
    assert any(p.startswith("fallback:") and "did you mean 'svd'" in p
               for p in problems(path, "wan21_t2v"))
    ok = board(tmp_path, [{"id": "a", "prompt": "p", "frames": 9}], fallback="svd")
    assert validated(ok, "wan21_t2v").model.fallback == "svd"


def test_camera_apply_post_in_both_forms(tmp_path):
    move = board(tmp_path, [{"id": "a", "prompt": "p", "frames": 9,
                             "camera": {"apply": "post", "zoom": 0.2}}])
    job = plan(move, "wan21_t2v").shots[0].segments[0]
    assert job.camera_apply == "post" and job.camera[-1].zoom == pytest.approx(0.2)
    keyed = board(tmp_path, [{"id": "a", "prompt": "p", "frames": 9, "camera": {
        "apply": "post", "keys": [{"at": "0s", "pan_x": 0}, {"at": "0.5s", "pan_x": 0.1}]}}])
    job2 = plan(keyed, "wan21_t2v").shots[0].segments[0]
    assert job2.camera_apply == "post" and job2.camera[-1].pan_x == pytest.approx(0.1)
    engine_side = board(tmp_path, [{"id": "a", "prompt": "p", "frames": 9,
                                    "camera": {"zoom": 0.2}}])
    assert plan(engine_side, "wan21_t2v").shots[0].segments[0].key != job.key
    bad = board(tmp_path, [{"id": "a", "prompt": "p", "frames": 9, "camera": {
        "apply": "post", "keys": [{"at": "1s", "pan_x": 0}, {"at": "0.5s", "pan_x": 0.1}]}}])
    assert any("camera.keys[1].at" in p for p in problems(bad, "wan21_t2v"))


@pytest.mark.parametrize("shot, where", [
    ({"steps": 0}, "shots[0].steps"),
    ({"cfg": 99}, "shots[0].cfg"),
    ({"boundary": 1.5}, "shots[0].boundary"),
    ({"denoise": 0}, "shots[0].denoise"),
    ({"loras": [{"path": "x.safetensors", "strength": 9}]}, "shots[0].loras[0].strength"),
    ({"loras": [{"strength": 1}]}, "shots[0].loras[0].path"),
    ({"camera": {"apply": "later", "zoom": 0.1}}, "shots[0].camera.apply"),
])
def test_bad_generation_values(tmp_path, shot, where):
    path = board(tmp_path, [{"id": "a", "prompt": "p", "frames": 9, **shot}])
    assert any(p.startswith(where) for p in problems(path, "wan22_i2v_a14b"))

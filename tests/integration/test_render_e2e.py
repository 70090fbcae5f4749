"""The render end to end through the real Prefect flow, into a temp dir, decoded and checked."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.base import EngineError
from engine.preview import PREVIEW_SPEC, PreviewEngine
from engine.registry import register, unregister
from flows.render import EXIT_FAILED, EXIT_OK, run
from flows.config.settings import RenderSettings, post_presets
from stages.media.video_io import load_png, read_frames, video_info
from tests.helpers.synthetic import write_png

pytestmark = pytest.mark.usefixtures("prefect_harness")

STORYBOARD = """
title: Test episode
fps: 16
resolution: 128x80
seed: 5
shots:
  - id: a
    prompt: "first shot"
    image: start.png
    duration: 1s
    camera: {zoom: 0.2}
    transition: {type: crossfade, duration: 0.25s}
  - id: b
    segments:
      - {prompt: "PROMPT_B0", duration: 1s}
      - {prompt: "second part", duration: 1s}
  - id: c
    start: chain
    prompt: "chained shot"
    duration: 1s
    camera:
      - {at: 0s, pan_x: 0}
      - {at: 1s, pan_x: 0.2, ease: in_out}
  - id: d
    prompt: "independent shot"
    frames: 9
post: [interpolate2x]
"""


class CountingEngine(PreviewEngine):
    """The preview engine, counting calls; 'boom' in a prompt fails for good, 'hiccup' fails
    with a transient I/O error on its first attempt."""

    calls: list[str] = []
    hiccups: set[str] = set()

    def generate(self, request, progress=None):
        CountingEngine.calls.append(f"{request.shot_id}_{request.segment_index}")
        if "boom" in request.prompt:
            raise EngineError(f"cannot render {request.prompt!r}")
        if "hiccup" in request.prompt and request.prompt not in CountingEngine.hiccups:
            CountingEngine.hiccups.add(request.prompt)
            raise OSError("disk hiccup")
        return super().generate(request, progress)


@pytest.fixture(autouse=True)
def counting_engine():
    register("test_counting", dataclasses.replace(PREVIEW_SPEC, name="test_counting"),
             CountingEngine)
    CountingEngine.calls = []
    CountingEngine.hiccups = set()
    yield
    unregister("test_counting")


def make_project(root: Path, text: str = STORYBOARD) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_png(root / "start.png", 160, 96, seed=1)
    path = root / "ep.yaml"
    path.write_text(text)
    return path


def settings_for(path: Path, out: Path, **kw) -> RenderSettings:
    base = dict(
        storyboard=str(path), output_dir=str(out), engine={"name": "test_counting", "params": {}},
        post=[], retry_delay=0.0, workers=2,
    )
    base.update(kw)
    return RenderSettings(**base)


def manifest(out: Path, name: str = "ep") -> dict:
    return json.loads((out / name / "manifest.json").read_text())


def cached_flags(m: dict) -> dict[str, bool]:
    return {f"{s['id']}_{g['index']}": g["cached"] for s in m["shots"] for g in s["segments"]}


def test_render_produces_the_contract_outputs(tmp_path, capsys):
    path = make_project(tmp_path / "project")
    out = tmp_path / "renders"
    assert run(settings_for(path, out)) == EXIT_OK
    folder = out / "ep"
    m = manifest(out)
    for key in ("storyboard", "engine", "fps", "frames", "duration_s", "shots"):
        assert key in m
    assert m["storyboard"] == "ep" and m["engine"] == "test_counting"
    assert m["fps"] == 32 and m["generation_fps"] == 16

    info = video_info(folder / "ep.mp4")
    assert (info.width, info.height) == (128, 80)
    assert info.frames == m["frames"]
    assert info.fps == pytest.approx(m["fps"])
    assert info.duration_s == pytest.approx(m["duration_s"], abs=1e-3)
    # Shots after the post chain: (n - 1) * 2 + 1 frames each; a crossfade of 0.25 s at 32 fps
    # (8 frames) overlaps a and b.
    shot_frames = {s["id"]: s["frames"] for s in m["shots"]}
    assert sum(shot_frames.values()) - 8 == m["frames"]
    for shot in m["shots"]:
        shot_video = video_info(folder / "shots" / f"{shot['id']}.mp4")
        assert shot_video.frames == shot["frames"]
        for seg in shot["segments"]:
            assert (folder / "frames" / f"{shot['id']}_{seg['index']}_last.png").is_file()
            assert seg["cached"] is False
    assert (folder / "contact_sheet.png").stat().st_size > 1000
    assert m["segments_rendered"] == 5 and m["segments_cached"] == 0
    out_text = capsys.readouterr().out
    assert "Done in" in out_text and "5 rendered, 0 cached" in out_text


def test_chaining_passes_last_frames_and_start_image(tmp_path):
    path = make_project(tmp_path / "project")
    out = tmp_path / "renders"
    assert run(settings_for(path, out, post=[], output={})) == EXIT_OK
    frames_dir = out / "ep" / "frames"
    store = out / ".cache" / "segment"
    m = manifest(out)
    keys = {f"{s['id']}_{g['index']}": g["key"] for s in m["shots"] for g in s["segments"]}

    def first_frame(label):
        key = keys[label]
        return next(read_frames(store / key[:2] / key / "clip.mkv"))

    # Segment b_1 starts on b_0's last frame; shot c starts on shot b's last frame (lossless).
    assert np.array_equal(first_frame("b_1"), load_png(frames_dir / "b_0_last.png"))
    assert np.array_equal(first_frame("c_0"), load_png(frames_dir / "b_1_last.png"))
    # Shot a starts on its start image (resized to cover 128x80).
    from engine.images import load_rgb

    assert np.array_equal(first_frame("a_0"), load_rgb(path.parent / "start.png", 128, 80))


def test_second_run_is_fully_cached_and_identical(tmp_path):
    path = make_project(tmp_path / "project")
    out = tmp_path / "renders"
    assert run(settings_for(path, out)) == EXIT_OK
    first_video = (out / "ep" / "ep.mp4").read_bytes()
    calls = len(CountingEngine.calls)
    assert run(settings_for(path, out)) == EXIT_OK
    m = manifest(out)
    assert len(CountingEngine.calls) == calls  # nothing generated
    assert all(cached_flags(m).values())
    assert all(s["cached"] for s in m["shots"])
    assert m["segments_rendered"] == 0 and m["segments_cached"] == 5
    assert (out / "ep" / "ep.mp4").read_bytes() == first_video


def test_editing_one_prompt_rerenders_that_shot_and_what_chains_from_it(tmp_path):
    path = make_project(tmp_path / "project")
    out = tmp_path / "renders"
    assert run(settings_for(path, out)) == EXIT_OK
    path.write_text(STORYBOARD.replace("PROMPT_B0", "an edited prompt"))
    CountingEngine.calls = []
    assert run(settings_for(path, out)) == EXIT_OK
    flags = cached_flags(manifest(out))
    assert flags == {"a_0": True, "b_0": False, "b_1": False, "c_0": False, "d_0": True}
    assert sorted(CountingEngine.calls) == ["b_0", "b_1", "c_0"]


def test_cache_is_shared_through_cache_dir_and_independent_of_folders(tmp_path):
    cache = tmp_path / "shared-cache"
    first = make_project(tmp_path / "one")
    assert run(settings_for(first, tmp_path / "out1", cache_dir=str(cache))) == EXIT_OK
    # The same storyboard and image in another folder: same keys, every segment from the cache.
    second = tmp_path / "two"
    shutil.copytree(tmp_path / "one", second)
    CountingEngine.calls = []
    assert run(settings_for(second / "ep.yaml", tmp_path / "out2", cache_dir=str(cache))) == EXIT_OK
    assert CountingEngine.calls == []
    assert all(cached_flags(manifest(tmp_path / "out2")).values())


def test_subset_of_shots_renders_dependencies_but_outputs_only_the_subset(tmp_path):
    path = make_project(tmp_path / "project")
    out = tmp_path / "renders"
    assert run(settings_for(path, out, shots=["c", "d"])) == EXIT_OK
    assert not (out / "ep" / "manifest.json").exists()  # that name is the full render's
    m = json.loads((out / "ep" / "manifest.shots-c+d.json").read_text())
    assert [s["id"] for s in m["shots"]] == ["c", "d"]
    # c chains from b, so b rendered too (but is not in the episode).
    assert sorted(CountingEngine.calls) == ["b_0", "b_1", "c_0", "d_0"]
    assert sorted(p.name for p in (out / "ep" / "shots").iterdir()) == ["c.mp4", "d.mp4"]


def test_failed_shot_keeps_other_segments_and_names_the_shot(tmp_path, capsys):
    text = STORYBOARD.replace("PROMPT_B0", "boom")
    path = make_project(tmp_path / "project", text)
    out = tmp_path / "renders"
    assert run(settings_for(path, out)) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "shot b segment 0" in err and "cannot render" in err
    # Deterministic errors are not retried.
    assert CountingEngine.calls.count("b_0") == 1
    assert not (out / "ep" / "ep.mp4").exists()
    # Independent shots finished and are cached: fixing the prompt renders only b and c.
    path.write_text(STORYBOARD)
    CountingEngine.calls = []
    assert run(settings_for(path, out)) == EXIT_OK
    assert sorted(CountingEngine.calls) == ["b_0", "b_1", "c_0"]


def test_transient_errors_are_retried(tmp_path):
    path = make_project(tmp_path / "project", STORYBOARD.replace("PROMPT_B0", "hiccup"))
    out = tmp_path / "renders"
    assert run(settings_for(path, out, retries=2)) == EXIT_OK
    assert CountingEngine.calls.count("b_0") == 2
    assert manifest(out)["segments_rendered"] == 5


def test_output_fps_and_post_override(tmp_path):
    path = make_project(tmp_path / "project")
    out = tmp_path / "renders"
    settings = settings_for(path, out, post=post_presets()["none"], post_override=True,
                            output={"fps": 8, "crf": 30})
    assert run(settings) == EXIT_OK
    m = manifest(out)
    assert m["post"] == [] and m["fps"] == 8
    info = video_info(out / "ep" / "ep.mp4")
    assert info.fps == pytest.approx(8) and info.frames == m["frames"]


def test_a_corrupted_cache_entry_is_rendered_again(tmp_path):
    path = make_project(tmp_path / "project")
    out = tmp_path / "renders"
    assert run(settings_for(path, out)) == EXIT_OK
    key = next(g["key"] for s in manifest(out)["shots"] for g in s["segments"]
               if (s["id"], g["index"]) == ("d", 0))
    clip = out / ".cache" / "segment" / key[:2] / key / "clip.mkv"
    data = bytearray(clip.read_bytes())
    data[len(data) // 2] ^= 0xFF
    clip.write_bytes(bytes(data))
    CountingEngine.calls = []
    assert run(settings_for(path, out)) == EXIT_OK
    assert CountingEngine.calls == ["d_0"]
    assert cached_flags(manifest(out))["d_0"] is False

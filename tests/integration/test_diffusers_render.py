"""Storyboards rendered through the real flow on tiny diffusers pipelines (engine=<config>
engine.model=<folder>): chaining, end frames, caching, one load per process, seeds, and the
fallback engine taking over on an injected out-of-memory error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.diffusers.model_pool import POOL
from flows.render import EXIT_FAILED, EXIT_INVALID, EXIT_OK, run
from flows.config.settings import RenderSettings
from stages.media.video_io import load_png, read_frames
from tests.helpers import tiny_pipelines as tiny
from tests.helpers.synthetic import write_png

torch.set_num_threads(1)
pytestmark = pytest.mark.usefixtures("prefect_harness")

I2V_STORYBOARD = """
fps: 16
resolution: 64x64
seed: 7
defaults: {steps: 2, cfg: 1.0}
shots:
  - id: a
    image: start.png
    segments:
      - {prompt: "the keeper walks", frames: 9}
      - {prompt: "the keeper runs", frames: 9, end_image: end.png, cfg_2: 2.0}
  - id: b
    start: chain
    prompt: "a boat at night"
    frames: 9
    camera: {pan_x: 0.1}
"""

T2V_STORYBOARD = """
fps: 16
resolution: 64x64
fallback: preview
shots:
  - {id: a, prompt: "a lighthouse", frames: 9, steps: 2}
  - {id: b, prompt: "the sea", frames: 9, steps: 2}
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("render-models")
    return {"i2v2": tiny.save_wan22_i2v(root / "wan22-i2v"),
            "t2v": tiny.save_wan_t2v(root / "wan-t2v")}


def project(root: Path, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_png(root / "start.png", 64, 64, seed=1)
    write_png(root / "end.png", 64, 64, seed=2)
    (root / "ep.yaml").write_text(text)
    return root / "ep.yaml"


def settings(path: Path, out: Path, engine: str, model: Path, **kw) -> RenderSettings:
    base = dict(storyboard=str(path), output_dir=str(out), post=[], retry_delay=0.0,
                workers=2, engine={"name": engine, "model": str(model), "options": {},
                                   "params": {}})
    base.update(kw)
    return RenderSettings(**base)


def manifest(out: Path) -> dict:
    return json.loads((out / "ep" / "manifest.json").read_text())


def record_requests(monkeypatch, cls) -> list:
    seen = []
    original = cls.generate

    def spy(self, request, progress=None):
        seen.append(request)
        return original(self, request, progress)

    monkeypatch.setattr(cls, "generate", spy)
    return seen


def test_wan22_two_experts_render_chain_end_frame_cache_and_one_load(tmp_path, models,
                                                                     monkeypatch):
    from engine.diffusers.families.wan import Wan22I2V

    POOL.clear()
    POOL.loads.clear()
    path = project(tmp_path / "p", I2V_STORYBOARD)
    out = tmp_path / "renders"
    seen = record_requests(monkeypatch, Wan22I2V)
    assert run(settings(path, out, "wan22_i2v_a14b", models["i2v2"])) == EXIT_OK
    m = manifest(out)
    assert m["engine"] == "wan22_i2v_a14b"
    assert [len(s["segments"]) for s in m["shots"]] == [2, 1]
    # One load for the two shots and three segments.
    assert list(POOL.loads.values()) == [1]

    by_label = {f"{r.shot_id}_{r.segment_index}": r for r in seen}
    frames_dir = out / "ep" / "frames"
    # Segment a_1 starts on a_0's last frame; shot b starts on a_1's last frame.
    assert np.array_equal(by_label["a_1"].start_image, load_png(frames_dir / "a_0_last.png"))
    assert np.array_equal(by_label["b_0"].start_image, load_png(frames_dir / "a_1_last.png"))
    # The end image and the per-segment key reach the engine.
    assert by_label["a_1"].end_image is not None and by_label["a_0"].end_image is None
    assert by_label["a_1"].params["cfg_2"] == 2.0 and by_label["a_1"].params["steps"] == 2
    # The camera move reaches a prompt-only engine as words.
    assert by_label["b_0"].camera and by_label["b_0"].camera[-1].pan_x > 0

    # A second run comes entirely from the cache: no generation, same video.
    seen.clear()
    first_clip = [f for f in read_frames(out / "ep" / "shots" / "a.mp4")]
    assert run(settings(path, out, "wan22_i2v_a14b", models["i2v2"])) == EXIT_OK
    assert seen == []
    assert manifest(out)["segments_cached"] == 3

    # Same seed, same pixels: a fresh cache renders the identical shot.
    out2 = tmp_path / "renders2"
    assert run(settings(path, out2, "wan22_i2v_a14b", models["i2v2"])) == EXIT_OK
    second_clip = list(read_frames(out2 / "ep" / "shots" / "a.mp4"))
    assert len(first_clip) == len(second_clip)
    assert all(np.array_equal(x, y) for x, y in zip(first_clip, second_clip))
    assert list(POOL.loads.values()) == [1]  # still one load in this process


def test_fallback_takes_over_on_out_of_memory(tmp_path, models, monkeypatch):
    import diffusers

    def out_of_memory(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(diffusers.WanPipeline, "__call__", out_of_memory)
    path = project(tmp_path / "p", T2V_STORYBOARD)
    out = tmp_path / "renders"
    assert run(settings(path, out, "wan21_t2v", models["t2v"])) == EXIT_OK
    segments = [g for s in manifest(out)["shots"] for g in s["segments"]]
    assert {g["engine"] for g in segments} == {"preview"}
    assert all("out of memory" in g["fallback_reason"] for g in segments)
    # The ladder ran first (on the CPU: VAE tiling, then smaller decode chunks).
    assert segments[0]["degraded"] == ["enabled VAE tiling", "halved the VAE decode chunk"]


def test_without_fallback_out_of_memory_fails_the_render(tmp_path, models, monkeypatch):
    import diffusers

    monkeypatch.setattr(diffusers.WanPipeline, "__call__",
                        lambda *a, **k: (_ for _ in ()).throw(MemoryError("out of memory")))
    path = project(tmp_path / "p", T2V_STORYBOARD.replace("fallback: preview\n", ""))
    assert run(settings(path, tmp_path / "r", "wan21_t2v", models["t2v"], retries=0)) \
        == EXIT_FAILED


def test_bad_model_folder_is_a_config_error(tmp_path, capsys):
    path = project(tmp_path / "p", T2V_STORYBOARD)
    code = run(settings(path, tmp_path / "r", "wan21_t2v", tmp_path / "no-such-model"))
    assert code == EXIT_INVALID
    err = capsys.readouterr().err
    assert "no-such-model" in err and "no such folder" in err
    assert not (tmp_path / "r").exists()


def test_t2v_engine_rejects_start_images_and_chained_segments(tmp_path, models, capsys):
    path = project(tmp_path / "p", I2V_STORYBOARD)
    assert run(settings(path, tmp_path / "r", "wan21_t2v", models["t2v"])) == EXIT_INVALID
    err = capsys.readouterr().err
    assert "cannot start from an image" in err
    assert "text-to-video only" in err


@pytest.fixture(scope="module")
def other_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("other-models")
    return {"wan_vace": tiny.save_wan_vace(root / "vace"),
            "cogvideox": tiny.save_cogvideox(root / "cog")}


@pytest.mark.parametrize("engine_name", ["wan_vace", "cogvideox"])
def test_other_families_render_through_the_flow(tmp_path, other_models, engine_name):
    text = T2V_STORYBOARD.replace("fallback: preview\n", "")
    if engine_name == "cogvideox":
        text = text.replace("fps: 16", "fps: 8")
    path = project(tmp_path / "p", text)
    out = tmp_path / "renders"
    assert run(settings(path, out, engine_name, other_models[engine_name])) == EXIT_OK
    m = manifest(out)
    assert m["engine"] == engine_name and m["segments_rendered"] == 2
    assert {g["engine"] for s in m["shots"] for g in s["segments"]} == {engine_name}

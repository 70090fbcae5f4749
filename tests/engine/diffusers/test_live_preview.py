"""Live previews while sampling: each family's latent-to-RGB projection on the tiny pipelines,
previews every few steps that change as the latent denoises, unchanged pixels, and the whole
path from the engine's step callback to renders/NAME/preview.png."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from engine.diffusers.latent_preview import latent_format, projection, to_rgb
from engine.diffusers.model_pool import ModelPool
from engine.registry import get_engine
from flows.pipeline.progress import RenderProgress
from tests.helpers import tiny_pipelines as tiny

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("preview-models")
    return {"wan21_t2v": tiny.save_wan_t2v(root / "wan"), "cogvideox": tiny.save_cogvideox(
        root / "cog"), "ltx": tiny.save_ltx(root / "ltx"), "svd": tiny.save_svd(root / "svd")}


def with_preview(shots: list):
    def progress(done, total):
        pass

    progress.preview = shots.append
    return progress


def test_factors_per_latent_format():
    for name, channels in [("wan21", 16), ("wan22", 48), ("hunyuan_video", 16),
                           ("ltxv", 128), ("sd15", 4)]:
        factors, bias = projection(name)
        assert factors.shape == (channels, 3) and bias.shape == (3,)
    assert latent_format("WanPipeline", 48) == "wan22"
    assert latent_format("WanImageToVideoPipeline", 16) == "wan21"
    assert latent_format("CogVideoXPipeline", 16) is None  # no published factors: fallback
    rgb = to_rgb(np.random.default_rng(0).normal(size=(16, 6, 8)).astype(np.float32), None)
    assert rgb.shape == (6, 8, 3) and rgb.dtype == np.uint8


@pytest.mark.parametrize("name,kw", [
    ("wan21_t2v", {}), ("cogvideox", {}), ("ltx", {}),
    ("svd", {"num_frames": 4, "fps": 7, "start_image": tiny.random_image(1)})])
def test_previews_every_few_steps_change_and_leave_pixels_alone(models, name, kw):
    engine = get_engine(name, model=str(models[name]), pool=ModelPool())
    shots: list = []
    frames = engine.generate(tiny.tiny_request(params={"steps": 4}, **kw), with_preview(shots))
    assert 2 <= len(shots) <= 4  # every 2 steps (or every second on a slow machine)
    assert all(s.dtype == np.uint8 and s.ndim == 3 and s.shape[2] == 3 for s in shots)
    assert not np.array_equal(shots[0], shots[1])  # the latent moved between previews
    plain = engine.generate(tiny.tiny_request(params={"steps": 4}, **kw))
    assert np.array_equal(frames, plain)


def test_preview_png_appears_during_a_render_and_changes(models, tmp_path, monkeypatch):
    view = RenderProgress("lines", write=lambda line: None)
    view.preview_path = tmp_path / "renders" / "ep" / "preview.png"
    seen: list[str] = []
    from stages.outputs import live_preview

    original = live_preview.write_preview

    def watch(path, rgb):
        original(path, rgb)
        seen.append(hashlib.sha256(path.read_bytes()).hexdigest())  # what a viewer reads now

    job = SimpleNamespace(label="s01_0", frames=9)
    progress = view.steps(job)
    engine = get_engine("wan21_t2v", model=str(models["wan21_t2v"]), pool=ModelPool())
    monkeypatch.setattr(live_preview, "write_preview", watch)
    engine.generate(tiny.tiny_request(params={"steps": 4}), progress)
    assert len(seen) >= 2 and seen[0] != seen[-1]
    from PIL import Image

    with Image.open(view.preview_path) as image:
        assert max(image.size) == live_preview.LONG_SIDE and image.mode == "RGB"
    assert f"live preview {view.preview_path}" in view.summary()
    assert "s01_0" in view.artifact_text("ep")

"""An animate storyboard on wan_animate (a tiny WanAnimatePipeline) whose weights fail to load,
rendered through the real flow: the tiny SVD fallback takes each shot as i2v from the
character reference (the shot's image, or for a chained shot its cast image, never the
previous shot's last frame), its 25 frames are retimed to the plan, and the manifest and
report.html say so."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.images import load_rgb
from flows.config.settings import RenderSettings
from flows.render import EXIT_OK, run
from stages.media.video_io import video_info
from tests.helpers import tiny_pipelines as tiny
from tests.helpers.synthetic import write_png
from tests.stages.plan.test_animate_plan import driving_video

torch.set_num_threads(1)
pytestmark = pytest.mark.usefixtures("prefect_harness")

STORYBOARD = """
fps: 16
resolution: 64x64
seed: 3
cast:
  keeper: {images: [keeper.png]}
defaults: {steps: 2, cfg: 1.0}
shots:
  - {id: a, image: start.png, prompt: "the keeper walks", frames: 33, driving_video: drive.mkv}
  - {id: b, start: chain, cast: [keeper], prompt: "{keeper} runs", frames: 33,
     driving_video: drive.mkv}
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("animate-models")
    return {"animate": tiny.save_wan_animate(root / "wan-animate"),
            "svd": tiny.save_svd(root / "svd")}


def test_animate_falls_back_to_svd_from_the_reference(tmp_path, models, monkeypatch):
    from diffusers import StableVideoDiffusionPipeline

    from engine.diffusers.families.wan import WanAnimate

    def missing_weights(self, *args, **kwargs):
        raise OSError("transformer/diffusion_pytorch_model.safetensors: no such file")

    monkeypatch.setattr(WanAnimate, "_load_pipeline", missing_weights)
    starts: list[np.ndarray] = []
    original = StableVideoDiffusionPipeline.__call__

    def spy(pipe, *args, **kwargs):
        starts.append(np.asarray(kwargs["image"]))
        return original(pipe, *args, **kwargs)

    monkeypatch.setattr(StableVideoDiffusionPipeline, "__call__", spy)

    root = tmp_path / "p"
    root.mkdir()
    write_png(root / "start.png", 64, 64, seed=1)
    write_png(root / "keeper.png", 64, 64, seed=2)
    driving_video(root / "drive.mkv", 40)
    (root / "ep.yaml").write_text(STORYBOARD)
    out = tmp_path / "renders"
    engine = {"name": "wan_animate", "model": str(models["animate"]), "options": {},
              "params": {},
              "fallback": {"name": "svd", "model": str(models["svd"]), "options": {},
                           "params": {"steps": 2}}}
    settings = RenderSettings(storyboard=str(root / "ep.yaml"), output_dir=str(out), post=[],
                              retry_delay=0.0, workers=1, engine=engine)
    assert run(settings) == EXIT_OK

    m = json.loads((out / "ep" / "manifest.json").read_text())
    segments = {s["id"]: s["segments"] for s in m["shots"]}
    assert [len(v) for v in segments.values()] == [1, 1]  # each shot one call
    for seg in (segments["a"][0], segments["b"][0]):
        assert seg["engine"] == "svd" and seg["frames"] == 33
        assert "EngineLoadError" in seg["fallback_reason"]
        assert "animate -> i2v from the reference image" in seg["adapted"]
        assert seg["retimed"] == [25, 33]
    assert video_info(out / "ep" / "shots" / "a.mp4").frames == 33
    assert video_info(out / "ep" / "shots" / "b.mp4").frames == 33  # nothing shared with a

    # The fallback started each shot from its character: a's image, b's cast image.
    assert len(starts) == 2
    shot_of = {0: "start.png", 1: "keeper.png"}
    for i, image in enumerate(starts):
        assert np.array_equal(image, load_rgb(root / shot_of[i], 64, 64)), shot_of[i]

    report = (out / "ep" / "report.html").read_text()
    assert report.count("fallback: svd (retimed 25 -&gt; 33 frames)") == 2

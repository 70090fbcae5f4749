"""svi, latent and overlap chaining through the real flow on tiny diffusers pipelines
(engine=<config> engine.model=<folder>): what each segment hands to the next, frame counts,
latents in the cache, and a fully cached second run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.images import load_rgb
from flows.render import EXIT_OK, run
from flows.config.settings import RenderSettings
from stages.media.video_io import read_frames
from tests.helpers import tiny_pipelines as tiny
from tests.helpers.synthetic import write_png

torch.set_num_threads(1)
pytestmark = pytest.mark.usefixtures("prefect_harness")

BOARD = """
fps: 16
resolution: 64x64
seed: 7
defaults: {{steps: 2, cfg: 1.0}}
shots:
  - id: a
    image: start.png
    prompt: "the keeper walks"
    segments: [{{frames: {frames}}}, {{frames: {frames}}}, {{frames: {frames}, end_image: end.png}}]
    chain: {chain}
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain-models")
    return {"wan22_i2v_a14b": tiny.save_wan22_i2v(root / "wan22-i2v"),
            "wan_vace": tiny.save_wan_vace(root / "vace")}


def render(root: Path, engine: str, model: Path, chain: str, frames: int):
    root.mkdir(parents=True, exist_ok=True)
    write_png(root / "start.png", 64, 64, seed=1)
    write_png(root / "end.png", 64, 64, seed=2)
    (root / "ep.yaml").write_text(BOARD.format(chain=chain, frames=frames))
    out = root / "renders"
    settings = RenderSettings(storyboard=str(root / "ep.yaml"), output_dir=str(out), post=[],
                              retry_delay=0.0, workers=2,
                              engine={"name": engine, "model": str(model), "options": {},
                                      "params": {}})
    assert run(settings) == EXIT_OK
    return out / "ep", json.loads((out / "ep" / "manifest.json").read_text())


def spy(monkeypatch, cls) -> dict:
    seen = {}
    original = cls.generate_with_latents

    def record(self, request, progress=None):
        frames, latents = original(self, request, progress)
        seen[request.segment_index] = (request, frames, latents)
        return frames, latents

    monkeypatch.setattr(cls, "generate_with_latents", record)
    return seen


def test_svi_chain_renders_through_the_flow(tmp_path, models, monkeypatch):
    from engine.diffusers.families.wan import Wan22I2V

    seen = spy(monkeypatch, Wan22I2V)
    folder, m = render(tmp_path / "svi", "wan22_i2v_a14b", models["wan22_i2v_a14b"],
                       "{mode: svi, motion_latents: 1}", 13)
    # Later segments drop the anchor frame and the 4 frames the motion latent re-renders.
    assert m["shots"][0]["frames"] == 13 + 8 + 8
    assert len(list(read_frames(folder / "shots" / "a.mp4"))) == 29
    first, second, third = (seen[i][0] for i in range(3))
    assert first.conditioning == "pixels" and first.keep_latents == 1
    assert second.conditioning == third.conditioning == "svi"
    # The anchor is the shot's start image; the motion latent is the upstream's last latent.
    anchor = load_rgb(tmp_path / "svi" / "start.png", 64, 64)
    assert np.array_equal(second.anchor_image, anchor)
    assert np.allclose(second.context_latents, seen[0][2][:, -1:])
    assert np.allclose(third.context_latents, seen[1][2][:, -1:])
    assert third.end_image is not None
    # A second run is entirely cached (latents included).
    seen.clear()
    folder, m = render(tmp_path / "svi", "wan22_i2v_a14b", models["wan22_i2v_a14b"],
                       "{mode: svi, motion_latents: 1}", 13)
    assert seen == {} and all(s["cached"] for s in m["shots"][0]["segments"])


def test_latent_chain_hands_over_latents_not_pixels(tmp_path, models, monkeypatch):
    from engine.diffusers.families.wan import Wan22I2V

    seen = spy(monkeypatch, Wan22I2V)
    _, m = render(tmp_path / "latent", "wan22_i2v_a14b", models["wan22_i2v_a14b"], "latent", 9)
    assert m["shots"][0]["frames"] == 9 + 8 + 8
    second = seen[1][0]
    assert second.conditioning == "latent"
    assert np.allclose(second.context_latents, seen[0][2][:, -1:])


def test_overlap_on_vace_conditions_on_the_last_frames(tmp_path, models, monkeypatch):
    from engine.diffusers.families.wan import WanVace

    seen = {}
    original = WanVace.generate

    def record(self, request, progress=None):
        frames = original(self, request, progress)
        seen[request.segment_index] = (request, frames)
        return frames

    monkeypatch.setattr(WanVace, "generate", record)
    folder, m = render(tmp_path / "overlap", "wan_vace", models["wan_vace"],
                       "{mode: overlap, overlap: 8}", 17)
    assert m["shots"][0]["frames"] == 17 + 9 + 9
    shot = list(read_frames(folder / "shots" / "a.mp4"))
    assert len(shot) == 35
    second = seen[1][0]
    assert second.context_frames.shape == (8, 64, 64, 3)
    # The context is the upstream's last 8 frames (segment 0 is the anchor: not recoloured).
    assert np.array_equal(second.context_frames, seen[0][1][-8:])
    # Frames before the overlap are segment 0's own (the shot video is lossy H.264).
    assert np.abs(shot[0].astype(int) - seen[0][1][0]).mean() < 6

"""A shot with a control video, rendered through the flow on the preview engine: the control
reaches the frames, renders/NAME/control/<shot>.mp4 shows it, and a second render hits the
cache (no segment, no extraction)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from flows.config.settings import RenderSettings
from flows.render import EXIT_OK, run
from stages.control import clip as control_clip
from stages.media.video_io import read_frames, video_info
from tests.helpers.control_clips import write_square_clip

torch.set_num_threads(1)

STORYBOARD = """
fps: 8
resolution: 64x64
shots:
  - id: s05
    prompt: "a dancer"
    duration: 2s
    control: {video: clips/dance.mp4, kind: canny, strength: 1.0, start: 0.5s}
  - id: s06
    prompt: "the bow"
    duration: 1s
"""


@pytest.mark.usefixtures("prefect_harness")
def test_control_video_is_used_written_and_cached(tmp_path, monkeypatch):
    (tmp_path / "clips").mkdir()
    write_square_clip(tmp_path / "clips" / "dance.mp4", frames=24, fps=8, width=64, height=64)
    (tmp_path / "ep.yaml").write_text(STORYBOARD)
    extractions = []
    real = control_clip.extractor
    monkeypatch.setattr(control_clip, "extractor",
                        lambda kind, *a, **k: extractions.append(kind) or real(kind, *a, **k))
    out = tmp_path / "renders"
    settings = RenderSettings(storyboard=str(tmp_path / "ep.yaml"), output_dir=str(out),
                              cache_dir=str(tmp_path / "cache"), post=[], retry_delay=0.0,
                              retries=0, engine={"name": "preview", "params": {}})
    assert run(settings) == EXIT_OK
    control = out / "ep" / "control" / "s05.mp4"
    manifest = json.loads((out / "ep" / "manifest.json").read_text())
    assert video_info(control).frames == 17  # the shot's frames at the storyboard's fps
    assert not (out / "ep" / "control" / "s06.mp4").exists()
    assert extractions == ["canny"]
    # strength 1: the preview's frames are the control frames (edges: mostly black)
    shot = np.stack(list(read_frames(out / "ep" / "shots" / "s05.mp4")))
    other = np.stack(list(read_frames(out / "ep" / "shots" / "s06.mp4")))
    assert shot.mean() < 40 < other.mean()

    assert run(settings) == EXIT_OK
    again = json.loads((out / "ep" / "manifest.json").read_text())
    assert again["segments_rendered"] == 0 and manifest["segments_rendered"] >= 2
    assert extractions == ["canny"]  # the extraction came from the cache
    assert video_info(control).frames == 17

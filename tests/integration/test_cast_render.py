"""A cast and generated keyframes through the real Prefect flow: three shots, one cast member
(references with a known colour pattern), keyframes from the preview's generate_image; frames,
manifest, report, a fully cached rerun, and the identity figure (the reference's presence)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from PIL import Image

from flows.config.settings import RenderSettings
from flows.render import EXIT_OK, run
from stages.media.video_io import read_frames
from tests.helpers.cast_boards import identity_score, pattern_image, write_cast_board

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_cast_and_keyframes_render_end_to_end(tmp_path, capsys):
    path = write_cast_board(tmp_path / "project")
    out = tmp_path / "renders"
    settings = RenderSettings(storyboard=str(path), output_dir=str(out),
                              engine={"name": "preview", "params": {}}, post=[],
                              retry_delay=0.0, workers=2)
    assert run(settings) == EXIT_OK
    folder = out / "cast"
    for name in ("s02_keyframe.png", "s03_keyframe.png"):
        assert (folder / "frames" / name).is_file()
    manifest = json.loads((folder / "manifest.json").read_text())
    shots = {s["id"]: s for s in manifest["shots"]}
    seg = shots["s01"]["segments"][0]
    assert seg["prompt"] == "an old lighthouse keeper climbs the stairs"
    assert seg["cast"] == ["keeper"]
    assert [k["which"] for k in shots["s02"]["keyframes"]] == ["start"]
    assert manifest["keyframes_rendered"] == 2
    assert "s02" in (folder / "report.html").read_text()

    # Identity: the first reference's pattern in each shot's frames (the preview's inset).
    reference = pattern_image()
    scores = {}
    for shot_id in ("s01", "s02", "s03"):
        frames = list(read_frames(folder / "shots" / f"{shot_id}.mp4"))
        scores[shot_id] = float(np.mean([identity_score(f, reference) for f in frames]))
    # The render redirects stdout to its console view; the figure goes to the real terminal.
    print("identity score per shot:", {k: round(v, 3) for k, v in scores.items()},
          file=sys.__stderr__)
    assert scores["s01"] > 0.9 and scores["s02"] > 0.9   # the keeper's shots show the pattern
    assert scores["s03"] < scores["s01"] - 0.1            # a shot without the keeper does not
    keyframe = np.asarray(Image.open(folder / "frames" / "s02_keyframe.png").convert("RGB"))
    assert identity_score(keyframe, reference) > 0.95

    capsys.readouterr()
    assert run(settings) == EXIT_OK  # a rerun is fully cached
    again = json.loads((folder / "manifest.json").read_text())
    assert again["segments_rendered"] == 0 and again["keyframes_rendered"] == 0

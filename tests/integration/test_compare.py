"""Side-by-side comparison of renders of one storyboard (the folders a multirun writes)."""

from __future__ import annotations

import pytest

from flows.compare import main
from flows.render import EXIT_OK, run
from flows.config.settings import RenderSettings
from stages.media.video_io import read_frames, video_info

pytestmark = pytest.mark.usefixtures("prefect_harness")

STORYBOARD = """
fps: 16
resolution: 96x64
shots:
  - {id: a, prompt: "first", frames: 9}
  - {id: b, prompt: "second", frames: 13}
"""


def test_compare_two_variants(tmp_path, capsys):
    path = tmp_path / "ep.yaml"
    path.write_text(STORYBOARD)
    out = tmp_path / "renders"
    for variant, motion in (("engine=preview", 1.0), ("engine.params.motion=0", 0.0)):
        settings = RenderSettings(storyboard=str(path), output_dir=str(out), post=[],
                                  engine={"name": "preview", "params": {"motion": motion}},
                                  variant=variant)
        assert run(settings) == EXIT_OK
    capsys.readouterr()
    assert main(["storyboard=ep", f"output_dir={out}", "height=64"]) == 0
    table = capsys.readouterr().out
    assert "| segment | engine.params.motion=0 | engine=preview |" in table
    assert "| a_0 |" in table and "| b_0 |" in table and "total rendered" in table
    info = video_info(out / "ep" / "compare.mp4")
    assert info.height == 64 + 28 and info.width == 2 * 96
    assert info.frames == 9 + 13
    first = next(read_frames(out / "ep" / "compare.mp4"))
    assert first[:28].mean() < 60  # the label band
    assert (out / "ep" / "compare.md").read_text().startswith("# ep: engines compared")


def test_compare_errors(tmp_path, capsys):
    assert main(["storyboard=nothing", f"output_dir={tmp_path}"]) == 2
    assert "no rendered variants" in capsys.readouterr().err
    assert main(["bogus=1"]) == 2
    assert main(["storyboard=x", f"output_dir={tmp_path}", "variants=[a]"]) == 2

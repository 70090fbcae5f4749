"""The real command line, as a user runs it: `python -m flows.render storyboard=NAME`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stages.media.video_io import video_info
from tests.helpers.boards import TINY
from tests.helpers.synthetic import write_png

ROOT = Path(__file__).resolve().parents[2]

def cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # The session's PREFECT_HOME (conftest): its database is migrated once, not per test.
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "flows.render", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_renders_from_the_storyboards_folder_of_the_working_directory(tmp_path):
    (tmp_path / "storyboards").mkdir()
    (tmp_path / "storyboards" / "tiny.yaml").write_text(TINY)
    write_png(tmp_path / "storyboards" / "pic.png", 96, 64)
    result = cli(["storyboard=tiny"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Done in" in result.stdout and "2 rendered, 0 cached" in result.stdout
    folder = tmp_path / "renders" / "tiny"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert video_info(folder / "tiny.mp4").frames == manifest["frames"]
    assert sorted(p.name for p in (folder / "frames").iterdir()) == ["one_0_last.png",
                                                                      "two_0_last.png"]
    assert "Traceback" not in result.stderr
    # Nothing but the render folder appears in the working directory.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["renders", "storyboards"]


def test_multirun_renders_each_combination_into_its_own_folder(tmp_path):
    (tmp_path / "sb.yaml").write_text(TINY)
    write_png(tmp_path / "pic.png", 96, 64)
    result = cli(["-m", "storyboard=sb.yaml", "fps=8,12", "post=none"], tmp_path)
    assert result.returncode == 0, result.stderr
    for fps in (8, 12):
        manifest = json.loads((tmp_path / "renders" / "sb" / f"fps={fps},post=none"
                               / "manifest.json").read_text())
        assert manifest["fps"] == fps and manifest["generation_fps"] == fps


def test_the_music_video_example_renders_with_depth_control_and_beats(tmp_path):
    """storyboards/music_video.yaml as the README runs it (smaller, same features): 2.5D moves
    from a depth map, a control video written beside the shot, a beat-driven zoom and hue."""
    result = cli(["storyboard=music_video", f"output_dir={tmp_path / 'renders'}",
                  "resolution=208x128"], ROOT)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "renders" / "music_video"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert video_info(folder / "music_video.mp4").frames == manifest["frames"]
    assert video_info(folder / "control" / "m02.mp4").frames == 33
    reactive = manifest["audio_reactive"]
    assert reactive["analysis"]["tempo"] == pytest.approx(120, abs=2)
    assert "Traceback" not in result.stderr

"""watch=true: render, then render again on every save of the storyboard, reusing the cache."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from flows.pipeline import watch as watch_module
from flows.render import EXIT_OK, run
from flows.config.settings import RenderSettings
from tests.helpers.synthetic import write_png

pytestmark = pytest.mark.usefixtures("prefect_harness")

STORYBOARD = """
fps: 8
resolution: 96x64
shots:
  - {id: a, prompt: "stays the same", image: pic.png, duration: 1s}
  - {id: b, prompt: "PROMPT_B", frames: 9}
"""


def save(path: Path, text: str, bump: int) -> None:
    """Write and move the modification time clearly forward (coarse file system clocks)."""
    path.write_text(text)
    stamp = time.time_ns() + bump * 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


def wait_for(condition, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_watch_renders_again_on_save_and_only_what_changed(tmp_path: Path, capsys):
    board = tmp_path / "w.yaml"
    board.write_text(STORYBOARD)
    write_png(tmp_path / "pic.png", 96, 64)
    settings = RenderSettings(storyboard="w.yaml", cwd=str(tmp_path), output_dir="out",
                              engine={"name": "preview", "params": {}}, watch=True,
                              watch_interval=0.05, watch_max_runs=3)
    manifest_path = tmp_path / "out" / "w" / "manifest.json"
    codes: list[int] = []
    watcher = threading.Thread(target=lambda: codes.append(run(settings)), daemon=True)
    watcher.start()
    seen = []

    def output(fragment: str) -> bool:
        seen.append(capsys.readouterr())
        return any(fragment in part.out + part.err for part in seen)

    wait_for(manifest_path.exists)
    first = json.loads(manifest_path.read_text())
    assert first["segments_rendered"] == 2

    save(board, STORYBOARD.replace("frames: 9", "frames: nine"), bump=2)  # an invalid save
    wait_for(lambda: output("Nothing was rendered"))
    save(board, STORYBOARD.replace("PROMPT_B", "PROMPT_B edited"), bump=4)  # fixed and edited
    watcher.join(timeout=120)
    assert codes == [EXIT_OK]
    output("")
    text = "".join(part.out + part.err for part in seen)
    assert "shots[1].frames" in text and text.count("Change saved") == 2

    second = json.loads(manifest_path.read_text())
    cached = {f"{s['id']}_{g['index']}": g["cached"] for s in second["shots"]
              for g in s["segments"]}
    assert cached == {"a_0": True, "b_0": False}  # only the edited shot rendered again
    assert second["key"] != first["key"]
    assert "PROMPT_B edited" in second["storyboard_yaml"]


def test_ctrl_c_while_waiting_stops_watching(tmp_path: Path, monkeypatch, capsys):
    board = tmp_path / "w.yaml"
    board.write_text(STORYBOARD)
    calls = []

    def interrupted(files, before, interval):
        raise KeyboardInterrupt

    monkeypatch.setattr(watch_module, "wait_for_change", interrupted)
    settings = RenderSettings(storyboard=str(board), cwd=str(tmp_path), watch=True)
    code = watch_module.watch(settings, lambda s: calls.append(s) or 0)
    assert code == 0 and len(calls) == 1
    assert "Stopped watching" in capsys.readouterr().out

"""Run names and tags, the pictures artifact's size cap, and notifications that never fail a
render (flows/pipeline/run_meta.py, flows/pipeline/notify.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from flows.pipeline import notify
from flows.pipeline.run_meta import pictures_markdown, render_tags, run_name


def test_names_and_tags():
    assert run_name("ep01") == "ep01"
    assert run_name("ep01", "engine=wan21_t2v") == "ep01 [engine=wan21_t2v]"
    assert run_name("ep01", series="demo") == "demo/ep01"
    assert render_tags("ep01", "svd") == ["reelforge", "storyboard:ep01", "engine:svd"]
    assert render_tags("ep01", "svd", "demo")[-1] == "series:demo"


def _noise(path: Path, size=(640, 360)) -> Path:
    pixels = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_pictures_are_inlined_and_capped(tmp_path):
    sheet = _noise(tmp_path / "sheet.png", (1600, 900))
    thumbs = {f"s{i}": [_noise(tmp_path / f"t{i}.png")] for i in range(40)}
    text = pictures_markdown("ep01", sheet, thumbs, "http://ui/runs/flow-run/1", limit=120_000)
    assert text.count("data:image/jpeg;base64,") >= 2
    assert "[This run in the Prefect UI](http://ui/runs/flow-run/1)" in text
    assert len(text) < 130_000 and "thumbnails left out" in text
    assert "| s39 | - | - | - | - |" in text  # every shot keeps its row
    spread = pictures_markdown("ep01", None, {"s": [_noise(tmp_path / f"u{i}.png", (32, 18))
                                                     for i in range(9)]})
    assert spread.count("data:image/jpeg") == 4


def test_notification_failures_are_warnings(tmp_path):
    warnings = []
    notice = notify.Notice("episode ep01", "failed", 3.25, ["error: boom"])
    # Nothing listens on port 9 (discard); and a URL Apprise does not know.
    sent = notify.send(["json://127.0.0.1:9/x", "nosuch://secret-token@host"], notice,
                       warn=warnings.append)
    assert sent == 0 and len(warnings) == 2, warnings
    assert not any("secret-token" in w for w in warnings)
    assert notice.body.splitlines()[:3] == ["episode: ep01", "status: failed", "duration: 3.2s"]
    assert notify.targets(["a://x", "b://y"], None, ["a://x"]) == ["a://x", "b://y"]

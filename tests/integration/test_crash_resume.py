"""Crash-resume: a render killed at any point and run again reuses every finished segment, and
its video decodes to exactly the frames of an uninterrupted render.

One cache, six runs of `python -m flows.render` (through tests/helpers/fault_points.py, which
injects the faults deterministically) in their own process groups:

1. SIGKILL inside the engine, in the middle of segment b_1;
2. Ctrl-C (SIGINT) inside the engine, in the middle of segment c_0: a clean stop;
3. SIGKILL while the post chain writes the first shot clip;
4. SIGKILL during the final encode of the episode;
5. SIGKILL while the finished episode is copied into the render folder with its manifest;
6. no fault: the render completes.

After every run: each cache entry verifies against its checksums, the engine was never called
for a segment whose entry existed before the run, and the temp files the previous (killed) run
left were removed when this one started. At the end: every segment came from the
cache, and the episode's decoded frames equal those of an uninterrupted render into a fresh cache.

The subprocesses use the session's Prefect test API (PREFECT_API_URL), so each costs a Python
start-up and imports (a few seconds), not an ephemeral Prefect server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flows.config.compose import compose_settings
from flows.pipeline.prepare import prepare
from flows.render import EXIT_OK, run
from stages.store.cache import META, CacheStore
from stages.store.cache_refs import KINDS
from stages.media.video_io import read_frames
from tests.helpers.synthetic import write_png

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
FAULT_POINTS = ROOT / "tests" / "helpers" / "fault_points.py"

STORYBOARD = """
fps: 8
resolution: 96x64
seed: 3
shots:
  - id: a
    prompt: "opening"
    image: start.png
    duration: 1s
    camera: {zoom: 0.2}
    transition: {type: crossfade, duration: 0.25s}
  - id: b
    segments:
      - {prompt: "b one", duration: 1s}
      - {prompt: "b two", duration: 1s}
  - id: c
    start: chain
    prompt: "chained"
    frames: 9
  - id: d
    prompt: "last"
    frames: 9
post: [interpolate2x]
"""

# (fault, expected exit status, what it interrupts)
RUNS = [
    ("kill@generate:b:1:4", -signal.SIGKILL, "during a segment (engine)"),
    ("sigint@generate:c:0:3", 130, "Ctrl-C during a segment"),
    ("kill@write:shot:1:10", -signal.SIGKILL, "during post (shot clip)"),
    ("kill@write:episode:1:20", -signal.SIGKILL, "during the final encode"),
    ("kill@embed", -signal.SIGKILL, "while publishing the episode with its manifest"),
    ("", 0, "uninterrupted"),
]
OVERRIDES = ["output_dir=out", "cache_dir=cache", "workers=2", "retries=0"]


def published(root: Path) -> set[tuple[str, str]]:
    out = set()
    for kind in KINDS:
        for meta in (root / kind).glob(f"*/*/{META}"):
            if not meta.parent.name.startswith("."):  # an unfinished write's temp folder
                out.add((kind, meta.parent.name))
    return out


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if ".tmp-" in p.name]


def assert_cache_consistent(root: Path) -> None:
    store = CacheStore(root)
    for kind, key in published(root):
        assert store.get(kind, key) is not None, f"damaged entry {kind}/{key[:12]}"


def render_process(work: Path, fault: str, log: Path, api_url: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PREFECT_API_URL=api_url,
               REELFORGE_FAULT=fault, REELFORGE_ENGINE_LOG=str(log))
    command = [sys.executable, str(FAULT_POINTS), "storyboard=sb.yaml", *OVERRIDES]
    # A session of its own: a SIGKILL fault kills the group (render, ffmpeg) like a power cut.
    return subprocess.run(command, cwd=work, env=env, capture_output=True, text=True,
                          timeout=240, start_new_session=True)


def test_killed_renders_resume_and_match_an_uninterrupted_render(tmp_path: Path):
    from prefect.settings import PREFECT_API_URL

    work = tmp_path / "work"
    work.mkdir()
    (work / "sb.yaml").write_text(STORYBOARD)
    write_png(work / "start.png", 96, 64)
    # The config the CLI composes (engine params included: they are part of every key).
    settings = compose_settings("sb.yaml", OVERRIDES, str(work))
    labels = {job.key: job.label for job in prepare(settings).plan.segments()}
    cache = work / "cache"

    calls_by_run = []
    killed_temps: list[bool] = []
    for fault, status, what in RUNS:
        before = published(cache) if cache.exists() else set()
        temps_before = set(leftovers(cache)) if cache.exists() else set()
        log = tmp_path / f"engine-{len(calls_by_run)}.log"
        result = render_process(work, fault, log, PREFECT_API_URL.value())
        report = f"{what}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        assert result.returncode == status, report
        calls = log.read_text().split() if log.exists() else []
        calls_by_run.append(calls)
        reused = {labels[key] for kind, key in before if kind == "segment"}
        assert not reused & set(calls), f"{what}: re-rendered finished segments\n{report}"
        assert cache.exists() and "Traceback" not in result.stderr, report
        assert_cache_consistent(cache)
        # What the killed run before left behind was removed when this one started (its
        # writer's process is gone), not an hour later.
        assert not temps_before & set(leftovers(cache)), f"{what}: dead writers' temps stayed"
        if fault.startswith("kill@"):
            killed_temps.append(bool(leftovers(cache)))
        if fault.startswith("sigint@"):
            assert "Interrupted" in result.stderr and "run the same command again" \
                in result.stderr, report
            # The segment being rendered was discarded atomically: no entry, no temp left.
            assert "c_0" in calls and not any(
                labels.get(key) == "c_0" for kind, key in published(cache)), report
            assert not leftovers(cache), "Ctrl-C left temp files"
            assert "Crash detected" not in result.stderr, report  # Prefect's noise is muted

    # Every kill happened where it was meant to: the kills left temp files of the writes they
    # interrupted (never under a final name, never read), and the last run cleaned them up.
    assert any(killed_temps), "the SIGKILLs should have interrupted writes"
    assert not leftovers(cache)
    # The segments the faults hit were rendered again in a later run; a segment running beside
    # one when the process died may have been too (never one that had finished: checked above).
    rendered = [label for calls in calls_by_run for label in calls]
    assert sorted(set(rendered)) == sorted(labels.values())
    assert rendered.count("b_1") >= 2 and rendered.count("c_0") >= 2
    assert calls_by_run[-1] == []

    manifest = json.loads((work / "out" / "sb" / "manifest.json").read_text())
    segments = [seg for shot in manifest["shots"] for seg in shot["segments"]]
    assert segments and all(seg["cached"] for seg in segments)
    assert manifest["segments_rendered"] == 0
    # The interrupted publish left nothing behind in the render folder.
    assert not [p for p in (work / "out" / "sb").rglob(".*") if ".tmp-" in p.name]

    # An uninterrupted render of the same storyboard into a fresh cache: identical frames.
    fresh = compose_settings("sb.yaml", OVERRIDES + ["output_dir=fresh", "cache_dir=fresh_cache"],
                             str(work))
    assert run(fresh) == EXIT_OK
    resumed = list(read_frames(work / "out" / "sb" / "sb.mp4"))
    clean = list(read_frames(work / "fresh" / "sb" / "sb.mp4"))
    assert len(resumed) == len(clean) == manifest["frames"]
    assert all(np.array_equal(x, y) for x, y in zip(resumed, clean))

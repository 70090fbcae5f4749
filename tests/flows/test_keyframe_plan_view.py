"""Generated keyframes in what the user sees before and during a render: the dry-run rows (hit /
miss per keyframe), the progress counts (keyframes as work units, shared keys once, an all-cached
render said so) and the plan's one-job-per-key rule."""

from __future__ import annotations

import io

import numpy as np
import pytest

from flows.config.settings import RenderSettings
from flows.pipeline.prepare import prepare, print_plan
from flows.pipeline.progress import RenderProgress
from stages.media.png import save_png
from stages.plan.keyframes import unique_keyframes
from stages.render.keyframes import KEYFRAME
from tests.helpers.cast_boards import write_cast_board
from tests.helpers.still_engines import BOARD, register_still_engines, unregister_still_engines


@pytest.fixture
def stills():
    register_still_engines()
    yield
    unregister_still_engines()


def prepared_for(tmp_path, text=None):
    path = write_cast_board(tmp_path / "project", text) if text else \
        write_cast_board(tmp_path / "project")
    return prepare(RenderSettings(storyboard=str(path), output_dir=str(tmp_path / "renders"),
                                  cache_dir=str(tmp_path / "cache"), post=[],
                                  engine={"name": "preview", "params": {}}))


def cache_keyframe(prepared, job) -> None:
    with prepared.store.put("keyframe", job.key, {"shot": job.shot_id}) as tmp:
        save_png(tmp / KEYFRAME, np.zeros((job.height, job.width, 3), np.uint8))


def test_dry_run_lists_keyframes_with_hit_and_miss(tmp_path):
    prepared = prepared_for(tmp_path)  # the cast board: s02 and s03 generate their start
    s02, s03 = list(prepared.plan.keyframes())
    cache_keyframe(prepared, s02)
    out = io.StringIO()
    print_plan(prepared, file=out)
    rows = {line.split()[0]: line for line in out.getvalue().splitlines()
            if " kf " in line}
    assert set(rows) == {"s02", "s03"}
    assert "start keyframe" in rows["s02"] and " hit " in rows["s02"]
    assert " miss " in rows["s03"] and "(preview)" in rows["s03"]
    assert "an old lighthouse keeper at the top at dusk" in rows["s02"]  # expanded prompt
    assert "2 keyframes (1 cached, 1 to generate)" in out.getvalue()


def test_progress_counts_keyframes_once_per_key(tmp_path, stills):
    prepared = prepared_for(tmp_path, BOARD)
    jobs = list(prepared.plan.keyframes())
    unique = unique_keyframes(prepared.plan)
    assert len(jobs) == 3 and len(unique) == 2  # s01 and s02 share their start keyframe
    lines: list[str] = []
    view = RenderProgress("lines", write=lines.append)
    view.begin(prepared)
    assert (view.keyframes_total, view.key_total, view.keyframes_cached) == (2, 2, False)
    assert view.fraction() == 0.0
    step = view.keyframe_steps(unique[0])
    step(1, 2)
    assert view.key_done == 0.5 and 0 < view.fraction() < 1
    view.keyframe_done(unique[0], cached=False)
    assert view.key_done == 1.0
    assert lines[-1].startswith("    progress: 1/2 keyframes, 0/2 segments, 0/2 shots")

    for job in unique:
        cache_keyframe(prepared, job)
    view.begin(prepared)
    assert view.key_total == 0 and view.keyframes_cached
    assert view.summary().startswith("progress: 0/2 keyframes (all cached), 0/2 segments")


def test_progress_without_keyframes_says_nothing_of_them(tmp_path):
    prepared = prepared_for(tmp_path, BOARD.replace(
        '    image: {generate: "the harbour at dawn", engine: stills_test, seed: 5}\n', "").replace(
        '    end_image: {generate: "the harbour at noon", engine: stills_test, seed: 6}\n', ""))
    view = RenderProgress("lines", write=lambda line: None)
    view.begin(prepared)
    assert view.keyframes_total == 0 and "keyframe" not in view.summary()

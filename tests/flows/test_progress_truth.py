"""Progress that tells the truth, on a scripted sequence of events with a fake clock: the
overall figure never goes backwards (even when a cost is re-learnt), stays below 100% until the
episode is written, reaches 100% then with a last line, and each shot's post chain has a bar."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from flows.pipeline import progress as live
from flows.pipeline import progress_figures


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(live.time, "monotonic", fake)  # the shared `time` module
    return fake


def scripted_view(lines):
    view = live.RenderProgress("lines", write=lines.append)
    segs = [SimpleNamespace(label=f"s{i}_0", frames=17) for i in range(3)]
    shots = [SimpleNamespace(id=f"s{i}", post_frames=33) for i in range(3)]
    view.segments_total = view.shots_total = 3
    view.gen_total = sum(s.frames for s in segs)
    view.post_total = view.assemble_total = sum(s.post_frames for s in shots)
    view._to_render = {s.label for s in segs} | {"post " + s.id for s in shots}
    return view, segs, shots


def test_monotone_and_100_only_when_the_episode_is_written(clock):
    lines: list[str] = []
    view, segs, shots = scripted_view(lines)
    shown, sent, raw = [], [], []
    view.attach_artifact(sent.append)
    for seg, shot, step_s, post_s in zip(segs, shots, (1.0, 9.0, 30.0), (0.1, 5.0, 0.2)):
        step = view.steps(seg)
        for done in range(1, 5):  # generation gets slower per segment: costs are re-learnt
            clock.now += step_s
            step(done, 4)
            shown.append(view.fraction())
            raw.append(view.estimate())
        view.segment_done(seg, cached=False)
        shown.append(view.fraction())
        post = view.post(shot)
        for done in range(1, shot.post_frames + 1, 8):
            clock.now += post_s
            post(done, shot.post_frames)
            shown.append(view.fraction())
        view.shot_done(shot, cached=False)
        shown.append(view.fraction())
    figures = shown
    assert any(b < a for a, b in zip(raw, raw[1:]))  # the estimate alone went backwards
    assert sent == sorted(sent) and max(sent) <= 99.0
    assert all(b >= a for a, b in zip(figures, figures[1:]))  # never backwards
    assert max(figures) <= progress_figures.BEFORE_FINISH  # all shots done, episode not yet
    assert "100%" not in "\n".join(lines)
    percents = [int(line.split("shots, ")[1].split("%")[0]) for line in lines]
    assert percents == sorted(percents)
    view.finish()
    assert view.fraction() == 1.0 and sent[-1] == 100.0
    assert lines[-1] == "    progress: 3/3 segments, 3/3 shots, 100%, episode written"


def test_a_relearnt_cost_does_not_move_the_figure_back(clock):
    view, segs, shots = scripted_view([])
    view.gen_done, view.post_done = 51.0, 33.0
    view._busy, view._measured = {"gen": 1.0, "post": 1.0, "key": 0.0}, \
        {"gen": 51.0, "post": 33.0, "key": 0.0}
    before = view.fraction()
    assert before == pytest.approx(view.estimate())
    view._busy["post"] = 100.0  # post turned out far dearer: the estimate drops...
    assert view.estimate() < before
    assert view.fraction() == before  # ...the figure shown does not


def test_post_chain_has_a_bar_per_shot(clock):
    view, segs, shots = scripted_view([])
    calls = []

    class FakeBars:
        def step(self, key, description, done, total):
            calls.append(("step", key, description, done, total))

        def done(self, key):
            calls.append(("done", key))

        def counts(self, *args):
            pass

    view._bars = FakeBars()
    view.post(shots[0])(8, 33)
    view.shot_done(shots[0], cached=False)
    assert ("step", "post s0", "  post s0", 8, 33) in calls and ("done", "post s0") in calls


def test_one_clock_for_console_and_report(clock, monkeypatch, tmp_path):
    monkeypatch.setattr(live, "_start_at", None)
    live.mark_start(50.0)
    view = live.RenderProgress("lines", write=lambda line: None)
    prepared = SimpleNamespace(
        plan=SimpleNamespace(name="ep", segments=lambda: [], included=lambda: [],
                             keyframes=lambda: [], shots=[]),
        store=SimpleNamespace(has=lambda *a: True), out_dir=tmp_path)
    monkeypatch.setattr("stages.plan.keyframes.unique_keyframes", lambda plan: [])
    view.begin(prepared, started=60.0)  # the flow started later than the CLI
    assert view.started == 50.0 and live._start_at is None  # used once, by this render
    monkeypatch.setattr(live.time, "perf_counter", lambda: 62.5)
    assert view.elapsed() == 12.5

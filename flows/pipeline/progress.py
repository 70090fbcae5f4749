"""What a user watching a render sees: shots, segments and engine steps with an ETA.

One `RenderProgress` per render collects events from the tasks (engine steps through the
engine's `progress(done, total)` callback, generated keyframes, finished segments, post-chain
frames, finished shots) and shows them three ways:

- on a terminal, live rich progress bars (flows/pipeline/progress_view.py: overall, segments,
  shots, one bar per segment being sampled and one per shot in post-processing);
- otherwise (logs, CI, a Prefect worker), a progress line after each finished segment and shot;
- in the Prefect UI, a progress artifact updated at most once a second, and every progress line
  as a log of the run (progress_view.run_log);
- the live preview: engines hand a small picture every few steps (engine.base.preview_hook),
  written to `renders/NAME/preview.png` and named on the console and in the artifact.

The overall figure tells the truth: it never goes backwards (a ratchet over the estimate, whose
per-phase costs are re-learnt as work finishes), it counts writing the episode as work of its
own, so it stays below 100% until `finish()` (the episode is written), and its clock is the
render's: `mark_start` (the CLI's start) or the flow's, the time the report gives as total.

It checks the stop flag that Ctrl-C and SIGTERM set (flows/runtime/stop.py): the next engine step
of a running segment raises RenderInterrupted, so the segment is discarded (its cache entry is
never published) instead of holding the user for minutes.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from engine.base import ProgressFn
from flows.pipeline.progress_figures import Figures
from flows.pipeline.progress_view import (Bars, clock as _clock, make_bars, preview_writer,
                                          run_log, use_terminal)
from flows.runtime.stop import RenderInterrupted, stop_requested

if TYPE_CHECKING:
    from flows.pipeline.prepare import Prepared
    from stages.plan.build import SegmentJob, ShotPlan
    from stages.plan.model import KeyframeJob

log = logging.getLogger(__name__)

ARTIFACT_INTERVAL_S = 1.0

_start_at: float | None = None  # time.perf_counter() when the CLI began (mark_start)


def mark_start(started: float | None = None) -> None:
    """The render's start (time.perf_counter()), for the progress clock and the report's total
    time: the CLI calls it first thing, so console and report count from the same moment."""
    global _start_at
    _start_at = time.perf_counter() if started is None else started


class RenderProgress(Figures):
    """Counts for one render, thread-safe; fed by tasks running concurrently."""

    def __init__(self, mode: str = "lines", write: Callable[[str], None] | None = None):
        self.mode = mode
        self._write = write or (lambda line: (sys.stdout.write(line + "\n"), sys.stdout.flush()))
        self._lock = threading.Lock()
        self._bars: Bars | None = None  # while a terminal view runs
        self._out = threading.RLock()  # figures are computed and shown in one go, in order
        self._artifact: Callable[[float], None] | None = None
        self._artifact_sent = 0.0
        self.started = time.perf_counter()
        self.preview_path: Path | None = None
        self.preview_of = ""  # what the latest preview shows ("s01_0 step 6/20")
        self._preview_lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.segments_total = self.segments_done = 0
        self.shots_total = self.shots_done = 0
        # Generated keyframes (one per key), a phase of their own: an image engine's still costs
        # what it costs, unrelated to a video frame; until one is measured it counts as a frame.
        self.keyframes_total = self.keyframes_done = 0
        self.keyframes_cached = False  # every keyframe was in the cache when the render began
        self.key_total = self.key_done = 0.0
        self._key_credit: dict[str, float] = {}
        self.gen_total = 0.0  # frames to generate (segments not in the cache)
        self.gen_done = 0.0
        self.post_total = 0.0  # post-chain output frames to write (shots not in the cache)
        self.post_done = 0.0
        self._seg_frames: dict[str, float] = {}  # label -> frames credited so far
        self._post_frames: dict[str, float] = {}
        self._to_render: set[str] = set()  # segments and shots counted in the totals
        self.first_work: float | None = None
        # Seconds per frame of each phase, learnt from finished segments and shots: generating
        # a frame costs ~0.04 s on the preview engine and minutes on a big model, while
        # interpolating one costs ~0.1 s, so neither phase can be given a fixed share.
        self._started: dict[str, float] = {}
        self._busy = {"gen": 0.0, "post": 0.0, "key": 0.0}
        self._measured = {"gen": 0.0, "post": 0.0, "key": 0.0}  # units behind _busy
        self.assemble_total = 0.0  # episode frames to write: the last piece of work
        self.finished = False
        self._shown = 0.0  # the highest overall figure shown so far (never goes back)

    # -- set-up ---------------------------------------------------------------------------------

    def begin(self, prepared: "Prepared", started: float | None = None) -> None:
        """Totals from the plan; entries already in the cache are not work to do. `started`:
        the render's start (time.perf_counter()); the earliest known start counts."""
        from stages.outputs.live_preview import PREVIEW_NAME
        from stages.plan.keyframes import unique_keyframes

        plan, store = prepared.plan, prepared.store
        global _start_at
        starts = [t for t in (started, _start_at) if t is not None]
        self.started, _start_at = (min(starts) if starts else time.perf_counter()), None
        self.preview_path, self.preview_of = prepared.out_dir / PREVIEW_NAME, ""
        with self._lock:
            self.reset()
            for kf in unique_keyframes(plan):  # shared keys generate once (the flow's rule)
                self.keyframes_total += 1
                if not store.has("keyframe", kf.key):
                    self.key_total += 1
                    self._to_render.add(_key_label(kf))
            self.keyframes_cached = self.keyframes_total > 0 and self.key_total == 0
            for job in plan.segments():
                self.segments_total += 1
                if not store.has("segment", job.key):
                    self.gen_total += job.frames
                    self._to_render.add(job.label)
            for shot in plan.included():
                self.shots_total += 1
                if not store.has("shot", shot.key):
                    self.post_total += shot.post_frames
                    self._to_render.add("post " + shot.id)
                self.assemble_total += shot.post_frames
        if self._bars is not None:
            self._bars.begin(plan.name, self.started, self.keyframes_total,
                             self.keyframes_cached, self.segments_total, self.shots_total)

    def attach_artifact(self, update: Callable[[float], None]) -> None:
        self._artifact = update

    # -- events (called from task threads) ------------------------------------------------------

    def steps(self, job: "SegmentJob") -> ProgressFn:
        """The engine's progress callback for one segment: credits frames in proportion to the
        steps done and stops the segment when Ctrl-C was pressed."""
        label = job.label

        def progress(done: int, total: int) -> None:
            if self._credit_steps("segment", label, job.frames, done, total, self._seg_frames,
                                  "gen_done"):
                self._bar_step(label, f"  {label} steps", done, total)
                self._send_artifact()

        progress.preview = preview_writer(self, label)  # type: ignore[attr-defined]
        return progress

    def keyframe_steps(self, job: "KeyframeJob") -> ProgressFn:
        """The image engine's progress callback for one keyframe: credits the keyframe in
        proportion to the steps done and stops it when Ctrl-C was pressed."""
        label = _key_label(job)

        def progress(done: int, total: int) -> None:
            if self._credit_steps("keyframe", label, 1.0, done, total, self._key_credit,
                                  "key_done"):
                self._send_artifact()

        return progress

    def _credit_steps(self, what: str, label: str, units: float, done: int, total: int,
                      credited: dict[str, float], counter: str) -> bool:
        """Credit `units` of work in proportion to the steps done (never taking credit back);
        Ctrl-C stops the work here. False when the engine reported no step count."""
        if stop_requested():
            raise RenderInterrupted(f"{what} {label} stopped by Ctrl-C; it was not saved")
        if total <= 0:
            return False
        with self._lock:
            if self.first_work is None:
                self.first_work = time.monotonic()
            self._started.setdefault(label, time.monotonic())
            credit = units * min(done, total) / total
            delta = credit - credited.get(label, 0.0)
            if delta > 0:
                credited[label] = credit
                setattr(self, counter, getattr(self, counter) + delta)
        return True

    def keyframe_done(self, job: "KeyframeJob", cached: bool) -> None:
        label = _key_label(job)
        with self._lock:
            self.keyframes_done += 1
            if label in self._to_render:
                self.key_done += 1.0 - self._key_credit.get(label, 0.0)
                self._key_credit[label] = 1.0
            if not cached:
                self._learn("key", label, 1.0)
        self._event()

    def segment_done(self, job: "SegmentJob", cached: bool) -> None:
        with self._lock:
            self.segments_done += 1
            if job.label in self._to_render:  # frames not reported as steps (or found cached)
                self.gen_done += job.frames - self._seg_frames.get(job.label, 0.0)
                self._seg_frames[job.label] = job.frames
            if not cached:
                self._learn("gen", job.label, job.frames)
        self._bar_done(job.label)
        self._event()

    def post(self, shot: "ShotPlan") -> ProgressFn:
        """The post chain's callback (frames written); stops the shot after Ctrl-C."""

        def progress(done: int, total: int) -> None:
            if stop_requested():
                raise RenderInterrupted(f"shot {shot.id} stopped by Ctrl-C; it was not saved")
            with self._lock:
                if self.first_work is None:
                    self.first_work = time.monotonic()
                self._started.setdefault("post " + shot.id, time.monotonic())
                delta = done - self._post_frames.get(shot.id, 0.0)
                if delta > 0:
                    self._post_frames[shot.id] = done
                    self.post_done += delta
            self._bar_step("post " + shot.id, f"  post {shot.id}", done, max(total, done))
            self._send_artifact()

        return progress

    def shot_done(self, shot: "ShotPlan", cached: bool) -> None:
        with self._lock:
            self.shots_done += 1
            if "post " + shot.id in self._to_render:
                self.post_done += shot.post_frames - self._post_frames.get(shot.id, 0.0)
                self._post_frames[shot.id] = shot.post_frames
            if not cached:
                self._learn("post", "post " + shot.id, shot.post_frames)
        self._bar_done("post " + shot.id)
        self._event()

    def finish(self) -> None:
        """The episode is written: 100%, and a last line saying so with the render's time."""
        with self._lock:
            self.gen_done, self.post_done = self.gen_total, self.post_total
            self.key_done = self.key_total
            self.finished = True
        with self._out:
            line = (f"progress: {self.keyframes_text()}{self.segments_done}/"
                    f"{self.segments_total} segments, {self.shots_done}/{self.shots_total} "
                    f"shots, 100%, episode written")
            if self._bars is None:
                self._write("    " + line)
            run_log(line)
            self._send_artifact(force=True)
            self._bars_update()
            if self._bars is not None:
                self._bars.stop()  # the overall clock stops when the episode is written

    def elapsed(self) -> float:
        """Seconds since the render started: the console's and the report's total time."""
        return time.perf_counter() - self.started

    # -- derived figures: progress_figures.Figures (cost per phase, estimate, fraction, ETA)

    def keyframes_text(self) -> str:
        """"2/3 keyframes, " ("2/2 keyframes (all cached), "); "" for a render without any."""
        if not self.keyframes_total:
            return ""
        cached = " (all cached)" if self.keyframes_cached else ""
        return f"{self.keyframes_done}/{self.keyframes_total} keyframes{cached}, "

    def summary(self) -> str:
        preview = (f"; live preview {self.preview_path}"
                   if self.preview_of and not self.finished else "")
        return (f"progress: {self.keyframes_text()}{self.segments_done}/{self.segments_total} "
                f"segments, {self.shots_done}/{self.shots_total} shots, {self.fraction():.0%}, "
                f"about {_clock(self.eta_seconds())} left{preview}")

    def artifact_text(self, name: str) -> str:
        """The progress artifact's description: what renders and the live preview."""
        text = f"Render of {name}: shots, segments and engine steps"
        if self.preview_of and not self.finished:
            text += f". Live preview ({self.preview_of}): {self.preview_path}"
        return text

    # -- outputs --------------------------------------------------------------------------------

    def _event(self) -> None:
        with self._out:  # one figure per line, lines in the order of their figures
            line = self.summary()
            if self._bars is None:
                self._write("    " + line)
            run_log(line)
            self._bars_update()
            self._send_artifact()

    def _send_artifact(self, force: bool = False) -> None:
        if self._artifact is None:
            return
        with self._out:
            now = time.monotonic()
            if not force and now - self._artifact_sent < ARTIFACT_INTERVAL_S:
                return
            self._artifact_sent = now
            try:
                self._artifact(round(100.0 * self.fraction(), 1))
            except Exception as exc:  # noqa: BLE001 - the UI view must never fail a render
                log.warning("could not update the Prefect progress artifact (%s); not trying "
                            "again", exc)
                self._artifact = None

    def _bars_update(self) -> None:
        if self._bars is not None:
            self._bars.counts(100.0 * self.fraction(), self.keyframes_done, self.segments_done,
                              self.shots_done)

    def _bar_step(self, key: str, description: str, done: float, total: float) -> None:
        if self._bars is not None:
            self._bars.step(key, description, done, total)
            self._bars_update()

    def _bar_done(self, key: str) -> None:
        if self._bars is not None:
            self._bars.done(key)


def _key_label(job: "KeyframeJob") -> str:
    # Keyed by content: a keyframe shared by two shots is one unit of work.
    return "keyframe " + job.key


# The render this process is running; the flow's tasks report to it.
_current = RenderProgress()


def current() -> RenderProgress:
    return _current


@contextlib.contextmanager
def console_view(mode: str = "auto") -> Iterator[RenderProgress]:
    """Show progress for renders run inside this block: live bars on a terminal, lines otherwise.
    Renders outside any block (a deployment's worker) report lines."""
    global _current
    previous = _current
    _current = RenderProgress("lines")
    if not use_terminal(mode):
        try:
            yield _current
        finally:
            _current = previous
        return
    bars = make_bars()
    _current.mode, _current._bars = "bars", Bars(bars)
    try:
        with bars:
            yield _current
    finally:
        _current._bars = None
        _current = previous


def artifact_key(name: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes."""
    return "render-" + (re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "storyboard")


def say(line: str) -> None:
    """A console line of the render (one write, so concurrent lines never interleave), also
    logged to the Prefect run it belongs to."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    run_log(line)


def start(prepared: "Prepared", started: float | None = None) -> RenderProgress:
    """Called at the top of the flow: totals from the plan and a Prefect progress artifact.
    `started`: the flow's start (time.perf_counter()), if earlier than mark_start's."""
    view = current()
    view.begin(prepared, started)
    name = prepared.plan.name
    try:
        from prefect.artifacts import create_progress_artifact, update_progress_artifact

        artifact_id = create_progress_artifact(
            progress=0.0, key=artifact_key(name), description=view.artifact_text(name))
        view.attach_artifact(lambda percent: update_progress_artifact(
            artifact_id, percent, description=view.artifact_text(name)))
    except Exception as exc:  # noqa: BLE001 - no API, an old server: render anyway
        log.warning("no Prefect progress artifact (%s)", exc)
    return view

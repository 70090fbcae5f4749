"""What a user watching a render sees: shots, segments and engine steps with an ETA.

One `RenderProgress` per render collects events from the tasks (engine steps through the
engine's `progress(done, total)` callback, generated keyframes, finished segments, post-chain
frames, finished shots) and shows them three ways:

- on a terminal, live rich progress bars (overall, segments, shots, one bar per running segment);
- otherwise (logs, CI, a Prefect worker), a progress line after each finished segment and shot;
- in the Prefect UI, a progress artifact updated at most once a second.

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
from typing import TYPE_CHECKING, Any, Callable, Iterator

from engine.base import ProgressFn
from flows.runtime.stop import RenderInterrupted, stop_requested

if TYPE_CHECKING:
    from flows.pipeline.prepare import Prepared
    from stages.plan.build import SegmentJob, ShotPlan
    from stages.plan.model import KeyframeJob

log = logging.getLogger(__name__)

ARTIFACT_INTERVAL_S = 1.0

def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class RenderProgress:
    """Counts for one render, thread-safe; fed by tasks running concurrently."""

    def __init__(self, mode: str = "lines", write: Callable[[str], None] | None = None):
        self.mode = mode
        self._write = write or (lambda line: (sys.stdout.write(line + "\n"), sys.stdout.flush()))
        self._lock = threading.Lock()
        self._bars = None  # rich Progress while a terminal view runs
        self._bar_ids: dict[str, Any] = {}
        self._artifact: Callable[[float], None] | None = None
        self._artifact_sent = 0.0
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

    # -- set-up ---------------------------------------------------------------------------------

    def begin(self, prepared: "Prepared") -> None:
        """Totals from the plan; entries already in the cache are not work to do."""
        from stages.plan.keyframes import unique_keyframes

        plan, store = prepared.plan, prepared.store
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
        if self._bars is not None:
            self._bars_begin(plan.name)

    def attach_artifact(self, update: Callable[[float], None]) -> None:
        self._artifact = update

    # -- events (called from task threads) ------------------------------------------------------

    def steps(self, job: "SegmentJob") -> ProgressFn:
        """The engine's progress callback for one segment: credits frames in proportion to the
        steps done and stops the segment when Ctrl-C was pressed."""
        label = job.label

        def progress(done: int, total: int) -> None:
            if stop_requested():
                raise RenderInterrupted(f"segment {label} stopped by Ctrl-C; it was not saved")
            if total <= 0:
                return
            with self._lock:
                if self.first_work is None:
                    self.first_work = time.monotonic()
                self._started.setdefault(label, time.monotonic())
                credit = job.frames * min(done, total) / total
                delta = credit - self._seg_frames.get(label, 0.0)
                if delta > 0:
                    self._seg_frames[label] = credit
                    self.gen_done += delta
            self._bar_step(label, done, total)
            self._send_artifact()

        return progress

    def keyframe_steps(self, job: "KeyframeJob") -> ProgressFn:
        """The image engine's progress callback for one keyframe: credits the keyframe in
        proportion to the steps done and stops it when Ctrl-C was pressed."""
        label = _key_label(job)

        def progress(done: int, total: int) -> None:
            if stop_requested():
                raise RenderInterrupted(f"keyframe {label} stopped by Ctrl-C; it was not saved")
            if total <= 0:
                return
            with self._lock:
                if self.first_work is None:
                    self.first_work = time.monotonic()
                self._started.setdefault(label, time.monotonic())
                credit = min(done, total) / total
                delta = credit - self._key_credit.get(label, 0.0)
                if delta > 0:
                    self._key_credit[label] = credit
                    self.key_done += delta
            self._send_artifact()

        return progress

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
        self._event()

    def finish(self) -> None:
        with self._lock:
            self.gen_done, self.post_done = self.gen_total, self.post_total
            self.key_done = self.key_total
        self._send_artifact(force=True)
        self._bars_update()

    # -- derived figures ------------------------------------------------------------------------

    def _learn(self, phase: str, label: str, frames: float) -> None:
        started = self._started.pop(label, None)
        if started is not None and frames > 0:
            self._busy[phase] += time.monotonic() - started
            self._measured[phase] += frames

    def _cost(self, phase: str) -> float:
        """Seconds per unit (a frame; a keyframe) of `phase`; another phase's figure until one
        is measured."""
        others = {"gen": ("post", "key"), "post": ("gen", "key"), "key": ("gen", "post")}
        for which in (phase, *others[phase]):
            if self._measured[which]:
                return max(self._busy[which] / self._measured[which], 1e-6)
        return 1.0

    def fraction(self) -> float:
        """Overall progress in [0, 1]: keyframes generated, frames generated and frames
        post-processed, each weighted by what a unit of its phase has cost so far."""
        gen, post, key = self._cost("gen"), self._cost("post"), self._cost("key")
        total = self.gen_total * gen + self.post_total * post + self.key_total * key
        if total <= 0:
            return 1.0
        done = self.gen_done * gen + self.post_done * post + self.key_done * key
        return min(done / total, 1.0)

    def eta_seconds(self) -> float | None:
        done = self.fraction()
        if self.first_work is None or done <= 0:
            return None
        elapsed = time.monotonic() - self.first_work
        return max(elapsed * (1 - done) / done, 0.0)

    def keyframes_text(self) -> str:
        """"2/3 keyframes, " ("2/2 keyframes (all cached), "); "" for a render without any."""
        if not self.keyframes_total:
            return ""
        cached = " (all cached)" if self.keyframes_cached else ""
        return f"{self.keyframes_done}/{self.keyframes_total} keyframes{cached}, "

    def summary(self) -> str:
        return (f"progress: {self.keyframes_text()}{self.segments_done}/{self.segments_total} "
                f"segments, {self.shots_done}/{self.shots_total} shots, {self.fraction():.0%}, "
                f"about {_clock(self.eta_seconds())} left")

    # -- outputs --------------------------------------------------------------------------------

    def _event(self) -> None:
        if self._bars is None:
            self._write("    " + self.summary())
        self._bars_update()
        self._send_artifact()

    def _send_artifact(self, force: bool = False) -> None:
        if self._artifact is None:
            return
        now = time.monotonic()
        if not force and now - self._artifact_sent < ARTIFACT_INTERVAL_S:
            return
        self._artifact_sent = now
        try:
            self._artifact(round(100.0 * self.fraction(), 1))
        except Exception as exc:  # noqa: BLE001 - the UI view must never fail a render
            log.warning("could not update the Prefect progress artifact (%s); not trying again",
                        exc)
            self._artifact = None

    def _bars_begin(self, name: str) -> None:
        bars = self._bars
        for task_id in list(bars.task_ids):
            bars.remove_task(task_id)
        self._bar_ids = {
            "overall": bars.add_task(f"{name}", total=100.0),
            **({"keyframes": bars.add_task(
                "keyframes (cached)" if self.keyframes_cached else "keyframes",
                total=self.keyframes_total)} if self.keyframes_total else {}),
            "segments": bars.add_task("segments", total=self.segments_total),
            "shots": bars.add_task("shots (post)", total=self.shots_total),
        }

    def _bars_update(self) -> None:
        if self._bars is None or "overall" not in self._bar_ids:
            return
        self._bars.update(self._bar_ids["overall"], completed=100.0 * self.fraction())
        if "keyframes" in self._bar_ids:
            self._bars.update(self._bar_ids["keyframes"], completed=self.keyframes_done)
        self._bars.update(self._bar_ids["segments"], completed=self.segments_done)
        self._bars.update(self._bar_ids["shots"], completed=self.shots_done)

    def _bar_step(self, label: str, done: int, total: int) -> None:
        if self._bars is None:
            return
        with self._lock:
            task_id = self._bar_ids.get(label)
            if task_id is None:
                task_id = self._bar_ids[label] = self._bars.add_task(f"  {label} steps", total=total)
        self._bars.update(task_id, completed=done, total=total)
        self._bars.update(self._bar_ids["overall"], completed=100.0 * self.fraction())

    def _bar_done(self, label: str) -> None:
        if self._bars is None:
            return
        with self._lock:
            task_id = self._bar_ids.pop(label, None)
        if task_id is not None:
            self._bars.remove_task(task_id)


def _key_label(job: "KeyframeJob") -> str:
    # Keyed by content: a keyframe shared by two shots is one unit of work.
    return "keyframe " + job.key


# The render this process is running; the flow's tasks report to it.
_current = RenderProgress()


def current() -> RenderProgress:
    return _current


def use_terminal(mode: str, stream: Any = None) -> bool:
    stream = stream or sys.stdout
    return mode == "bars" or (mode == "auto" and hasattr(stream, "isatty") and stream.isatty())


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
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    bars = Progress(TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    redirect_stdout=True, redirect_stderr=True, transient=False)
    _current.mode, _current._bars = "bars", bars
    try:
        with bars:
            yield _current
    finally:
        _current._bars = None
        _current = previous


def artifact_key(name: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes."""
    return "render-" + (re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "storyboard")


def start(prepared: "Prepared") -> RenderProgress:
    """Called at the top of the flow: totals from the plan and a Prefect progress artifact."""
    view = current()
    view.begin(prepared)
    try:
        from prefect.artifacts import create_progress_artifact, update_progress_artifact

        artifact_id = create_progress_artifact(
            progress=0.0, key=artifact_key(prepared.plan.name),
            description=f"Render of {prepared.plan.name}: shots, segments and engine steps")
        view.attach_artifact(lambda percent: update_progress_artifact(artifact_id, percent))
    except Exception as exc:  # noqa: BLE001 - no API, an old server: render anyway
        log.warning("no Prefect progress artifact (%s)", exc)
    return view

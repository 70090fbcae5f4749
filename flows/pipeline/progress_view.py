"""How render progress is shown: rich bars on a terminal, and every line also as a Prefect log.

flows/pipeline/progress.py counts; this draws. On a terminal the bars are: the overall bar (its
elapsed time counts from the render's start, the same clock as the report's total time; its
note shows the live preview's path), keyframes, segments, shots, one bar per segment being
sampled (engine steps) and one per shot in post-processing (frames written).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any, Callable

import numpy as np

log = logging.getLogger(__name__)

_API_LOGGER = "reelforge.run_log"


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def use_terminal(mode: str, stream: Any = None) -> bool:
    stream = stream or sys.stdout
    return mode == "bars" or (mode == "auto" and hasattr(stream, "isatty") and stream.isatty())


def make_bars():
    """The rich Progress of a terminal view; time from time.perf_counter (the render's clock)."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    return Progress(TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    TextColumn("{task.fields[note]}"), get_time=time.perf_counter,
                    redirect_stdout=True, redirect_stderr=True, transient=False)


class Bars:
    """The terminal bars of one render, keyed by name ("overall", a segment label, ...)."""

    def __init__(self, progress) -> None:
        self.progress = progress
        self._ids: dict[str, Any] = {}
        self._lock = threading.Lock()

    def begin(self, name: str, started: float, keyframes: int, keyframes_cached: bool,
              segments: int, shots: int) -> None:
        bars = self.progress
        for task_id in list(bars.task_ids):
            bars.remove_task(task_id)
        with self._lock:
            self._ids = {"overall": bars.add_task(name, total=100.0, note="")}
            if keyframes:
                self._ids["keyframes"] = bars.add_task(
                    "keyframes (cached)" if keyframes_cached else "keyframes", total=keyframes,
                    note="")
            self._ids["segments"] = bars.add_task("segments", total=segments, note="")
            self._ids["shots"] = bars.add_task("shots (post)", total=shots, note="")
        # The overall bar's clock starts with the render, as the report's total time does.
        task = next((t for t in bars.tasks if t.id == self._ids["overall"]), None)
        if task is not None:
            task.start_time = min(started, task.start_time or started)

    def counts(self, percent: float, keyframes: int, segments: int, shots: int) -> None:
        if "overall" not in self._ids:
            return
        self.progress.update(self._ids["overall"], completed=percent)
        if "keyframes" in self._ids:
            self.progress.update(self._ids["keyframes"], completed=keyframes)
        self.progress.update(self._ids["segments"], completed=segments)
        self.progress.update(self._ids["shots"], completed=shots)

    def step(self, key: str, description: str, done: float, total: float) -> None:
        """A bar for one piece of work in progress (a segment's steps, a shot's post chain)."""
        with self._lock:
            task_id = self._ids.get(key)
            if task_id is None:
                task_id = self._ids[key] = self.progress.add_task(description, total=total,
                                                                  note="")
        self.progress.update(task_id, completed=done, total=total)

    def done(self, key: str) -> None:
        with self._lock:
            task_id = self._ids.pop(key, None)
        if task_id is not None:
            self.progress.remove_task(task_id)

    def stop(self) -> None:
        if "overall" in self._ids:
            self.progress.stop_task(self._ids["overall"])

    def note(self, text: str) -> None:
        if "overall" in self._ids:
            self.progress.update(self._ids["overall"], note=text)


def _api_logger() -> logging.Logger:
    """A logger that sends to the Prefect API only: the console already has the line, and
    Prefect's own run loggers follow PREFECT_LOGGING_LEVEL (WARNING for the CLI)."""
    logger = logging.getLogger(_API_LOGGER)
    if not logger.handlers:
        from prefect.logging.handlers import APILogHandler

        logger.addHandler(APILogHandler())
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def run_log(line: str) -> None:
    """`line` as an INFO log of the Prefect flow (or task) run this thread works for; nothing
    outside a run. Never raises: the logs are a view."""
    try:
        if "prefect" not in sys.modules:
            return
        from prefect import get_run_logger
        from prefect.context import FlowRunContext, TaskRunContext
        from prefect.logging.loggers import PrefectLogAdapter

        if FlowRunContext.get() is None and TaskRunContext.get() is None:
            return
        run_logger = get_run_logger()  # the run's ids, attached to every record
        PrefectLogAdapter(_api_logger(), getattr(run_logger, "extra", {})).info(line.strip())
    except Exception:  # noqa: BLE001 - no API, no run: the console has the line anyway
        pass


def preview_writer(view: Any, label: str) -> Callable[[np.ndarray], None]:
    """The engine's live preview hook (engine.base.preview_hook) for one segment of the render
    `view` (a RenderProgress): writes `view.preview_path` atomically and names it on the
    console (the overall bar's note, or the progress lines) and in the progress artifact."""

    def preview(rgb: np.ndarray) -> None:
        from stages.outputs.live_preview import write_preview

        if view.preview_path is None:
            return
        try:
            with view._preview_lock:
                write_preview(view.preview_path, rgb)
        except OSError as exc:
            log.warning("could not write the live preview %s (%s)", view.preview_path, exc)
            return
        view.preview_of = label
        if view._bars is not None:
            view._bars.note(f"preview {view.preview_path} ({label})")
        view._send_artifact()

    return preview

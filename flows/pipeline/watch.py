"""`python -m flows.render storyboard=NAME watch=true`: render, then render again on every save.

The loop polls modification times (no extra dependency, works on network folders) of the
storyboard and of the local images it uses. Each render is a normal render: the cache makes it
cost only what changed (an edited shot, the shots chained from it, and the episode encode).
An invalid save prints its problems and waits for the next save. Ctrl-C stops.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

from flows.pipeline.prepare import prepare
from flows.config.settings import RenderSettings, find_storyboard
from flows.runtime.hydra_cli import EXIT_INTERRUPTED, EXIT_TERMINATED


Stamp = tuple[tuple[str, int, int], ...]


def watched_files(settings: RenderSettings) -> list[Path]:
    """The storyboard and, when it is valid, the local images it uses."""
    try:
        path = find_storyboard(settings)
    except ValueError:
        return []
    files = [path]
    try:
        prepared = prepare(settings)
    except Exception:  # noqa: BLE001 - an invalid save: watch the storyboard alone
        return files
    files += [p for p in prepared.storyboard.images.values() if p.is_file()]
    return files


def stamp(files: list[Path]) -> Stamp:
    out = []
    for path in files:
        try:
            info = path.stat()
            out.append((str(path), info.st_mtime_ns, info.st_size))
        except OSError:
            out.append((str(path), -1, -1))
    return tuple(out)


def wait_for_change(files: list[Path], before: Stamp, interval: float) -> None:
    """Return once the files differ from `before` and have then stayed unchanged for one
    interval (an editor may write a file in several steps)."""
    while True:
        time.sleep(interval)
        now = stamp(files)
        if now == before:
            continue
        while True:
            time.sleep(interval)
            later = stamp(files)
            if later == now:
                return
            now = later


def watch(settings: RenderSettings, render_once: Callable[[RenderSettings], int]) -> int:
    runs = 0
    code = 0
    try:
        while True:
            files = watched_files(settings) or [Path(settings.storyboard)]
            before = stamp(files)
            code = render_once(settings)
            runs += 1
            if code in (EXIT_INTERRUPTED, EXIT_TERMINATED):  # Ctrl-C or SIGTERM: stop watching
                return code
            if settings.watch_max_runs is not None and runs >= settings.watch_max_runs:
                return code
            print(f"Watching {files[0]} for changes (render {runs} done; Ctrl-C stops).",
                  flush=True)
            wait_for_change(files, before, settings.watch_interval)
            print(f"Change saved at {time.strftime('%H:%M:%S')}: rendering again.", flush=True)
    except KeyboardInterrupt:
        sys.stdout.write("\nStopped watching.\n")
        return code if code != EXIT_INTERRUPTED else 0

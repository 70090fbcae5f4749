"""The stop flag a running render checks at every engine step, and the Ctrl-C handler that
sets it (SIGTERM sets it too: flows/runtime/hydra_cli.py).

A segment that sees the flag raises RenderInterrupted and is discarded (its cache entry is never
published); finished segments stay cached.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Iterator

# Prefect's loggers for flow and task runs: silenced once the user asked for the stop.
PREFECT_RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")

_stop = threading.Event()


class RenderInterrupted(Exception):
    """Raised inside a running segment after Ctrl-C; the segment is discarded atomically."""


def request_stop() -> None:
    _stop.set()


def stop_requested() -> bool:
    return _stop.is_set()


def clear_stop() -> None:
    _stop.clear()


def _on_sigint(signum, frame) -> None:
    if _stop.is_set():  # the second Ctrl-C: the user will not wait for anything
        sys.stderr.write("\nStopped at once; unfinished segments were not saved.\n")
        sys.stderr.flush()
        os._exit(130)
    _stop.set()
    sys.stderr.write("\nCtrl-C: stopping; segments being rendered are discarded, finished ones "
                     "stay cached (Ctrl-C again quits at once)\n")
    sys.stderr.flush()
    # The stopped tasks and the flow now fail on purpose; Prefect would log each with its
    # traceback. The user asked for the stop: the CLI's one message says what happened.
    for name in PREFECT_RUN_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    raise KeyboardInterrupt


@contextlib.contextmanager
def stop_on_sigint() -> Iterator[None]:
    """Ctrl-C sets the stop flag before the KeyboardInterrupt unwinds the flow, so the segments
    still running stop at their next step instead of finishing. Only the main thread can
    install signal handlers; elsewhere (a render run from a thread) this does nothing."""
    clear_stop()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _on_sigint)
    levels = {name: logging.getLogger(name).level for name in PREFECT_RUN_LOGGERS}
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        clear_stop()

"""Exit statuses for the command-line entry points (render, series, enhance, submit).

    0    done
    1    the work failed (a render, an episode, the encoder, Prefect's API): a short message and
         no traceback; `--debug` on the command line or REELFORGE_DEBUG=1 prints it
    2    invalid storyboard, config or command line: nothing was rendered or written
    130  Ctrl-C (SIGINT)
    143  SIGTERM (docker stop, systemd, a Prefect cancellation): a clean, resumable stop

Hydra exits with status 1 on a bad override before the decorated main runs; for our users that
is a configuration error (2), like any other. Anything raised once a job runs is caught by
`job_status` and is a failure (1), never "bad input". The main functions append their own
status to a list, since a Hydra main cannot return one. Nothing here imports prefect or hydra.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import traceback
from typing import Callable, Iterator

from flows.runtime.stop import PREFECT_RUN_LOGGERS, request_stop  # the flag running segments check

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report it (128 + SIGINT)
EXIT_TERMINATED = 143  # SIGTERM (128 + 15)

DEBUG_ENV = "REELFORGE_DEBUG"
DEBUG_FLAG = "--debug"
DEBUG_HINT = f"(`{DEBUG_FLAG}` or {DEBUG_ENV}=1 prints the traceback)"


class Terminated(BaseException):
    """SIGTERM arrived: stop like Ctrl-C does. A BaseException, as KeyboardInterrupt is, so no
    `except Exception` on the way up swallows it."""

    def __init__(self, message: str = "stopped by SIGTERM") -> None:
        super().__init__(message)


def debug_enabled() -> bool:
    """Tracebacks on: REELFORGE_DEBUG=1 (or --debug, which sets it), or Hydra's own
    HYDRA_FULL_ERROR=1."""
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
               for name in (DEBUG_ENV, "HYDRA_FULL_ERROR"))


def take_debug_flag(argv: list[str] | None = None) -> None:
    """Hydra owns the command line: `--debug` is taken out of it and becomes REELFORGE_DEBUG=1."""
    argv = sys.argv if argv is None else argv
    if DEBUG_FLAG in argv[1:]:
        argv[:] = [argv[0]] + [a for a in argv[1:] if a != DEBUG_FLAG]
        os.environ[DEBUG_ENV] = "1"


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def report_failure(exc: BaseException, what: str) -> int:
    """An unexpected exception inside a job: one short message (the traceback only in debug
    mode); returns EXIT_FAILED. An exception with `user_message` (PrefectUnavailable) says the
    cause and the fix itself."""
    if debug_enabled():
        traceback.print_exception(exc, file=sys.stderr)
    message = getattr(exc, "user_message", None)
    if message:
        print(f"error: {message}", file=sys.stderr)
    else:
        print(f"error: {what} failed: {type(exc).__name__}: {_one_line(str(exc))}",
              file=sys.stderr)
    if not debug_enabled():
        print(f"This is a failure, not bad input {DEBUG_HINT}; finished work is cached, so "
              "the same command resumes.", file=sys.stderr)
    return EXIT_FAILED


def is_termination(exc: BaseException) -> bool:
    """Ours (Terminated) or Prefect's TerminationSignal (SIGTERM while its engine held it)."""
    return isinstance(exc, Terminated) or type(exc).__name__ == "TerminationSignal"


def stopped_message(exc: BaseException, what: str) -> tuple[str, int]:
    if is_termination(exc):
        return (f"Stopped by SIGTERM: {what} ended cleanly. Finished work is cached; run the "
                "same command again to resume where it stopped.", EXIT_TERMINATED)
    return (f"Interrupted: {what} stopped. Finished work is cached; run the same command again "
            "to resume where it stopped.", EXIT_INTERRUPTED)


class _SweepStopped(BaseException):
    """After Ctrl-C or SIGTERM no further job of a multirun starts; the status is recorded."""


@contextlib.contextmanager
def job_status(codes: list[int], what: str) -> Iterator[None]:
    """Around the body of a Hydra main: whatever escapes is recorded in `codes` as 1 (a
    failure), 130 (Ctrl-C) or 143 (SIGTERM), so Hydra never maps it to "bad input". After a
    stop (recorded here or returned by the job), the remaining jobs of a multirun do not run."""
    try:
        yield
    except (KeyboardInterrupt, Terminated) as exc:
        text, code = stopped_message(exc, what)
        print(text, file=sys.stderr)
        codes.append(code)
    except BaseException as exc:  # noqa: BLE001 - SystemExit/TerminationSignal included
        if is_termination(exc):
            text, code = stopped_message(exc, what)
            print(text, file=sys.stderr)
            codes.append(code)
        elif isinstance(exc, SystemExit):
            raise
        else:
            codes.append(report_failure(exc, what))
    if codes and codes[-1] in (EXIT_INTERRUPTED, EXIT_TERMINATED):
        raise _SweepStopped()


# --- SIGTERM ------------------------------------------------------------------------------------

_terminating = threading.Event()


def _on_sigterm(signum, frame) -> None:
    if _terminating.is_set():  # a second SIGTERM: stop now
        sys.stderr.write("\nSIGTERM again: stopped at once; unfinished segments were not saved.\n")
        sys.stderr.flush()
        os._exit(EXIT_TERMINATED)
    _terminating.set()
    request_stop()
    sys.stderr.write("\nSIGTERM: stopping; segments being rendered are discarded, finished ones "
                     "stay cached\n")
    sys.stderr.flush()
    # The stopped tasks now fail on purpose; the CLI's one message says what happened.
    for name in PREFECT_RUN_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    raise Terminated()


def terminate_requested() -> bool:
    return _terminating.is_set()


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """SIGTERM raises Terminated in the main thread (after setting the stop flag that running
    segments check). Outside the main thread this does nothing. Re-entrant: a nested scope
    re-installs the handler over whatever replaced it (Prefect's engine installs its own)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- the Hydra wrapper --------------------------------------------------------------------------


def hydra_exit_code(main: Callable[[], None], codes: list[int], hint: str) -> int:
    """Run a @hydra.main function; the worst status it recorded, or 2 (with `hint`) when Hydra
    refused the command line (it exits 1 before any job ran)."""
    take_debug_flag()
    _terminating.clear()
    with stop_on_sigterm():
        try:
            main()
        except SystemExit as exc:
            if not codes and exc.code not in (0, None):
                print(hint, file=sys.stderr)
                return EXIT_INVALID
            if exc.code not in (0, None):
                return max(codes + [int(exc.code) if isinstance(exc.code, int) else EXIT_FAILED])
        except _SweepStopped:
            return max(codes)
        except (KeyboardInterrupt, Terminated) as exc:  # outside any job (Hydra's own set-up)
            text, code = stopped_message(exc, "the command")
            print(text, file=sys.stderr)
            return code
    return max(codes, default=EXIT_OK)

"""Prefect's API for a command-line run, started patiently, and a clean SIGTERM inside flows.

Without PREFECT_API_URL, Prefect starts a temporary ("ephemeral") API server in a subprocess for
each process. On a busy machine that takes far longer than Prefect's 20 s default start-up
timeout, and the render died with "Timed out while attempting to connect to ephemeral Prefect API
server". `ensure_api()` starts that server before the first flow call, with a longer timeout
(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS when you set it, else
DEFAULT_STARTUP_TIMEOUT_S) and a retry; when it truly cannot start it raises PrefectUnavailable
naming the cause and the fix. The server's own stderr (uvicorn/SQLAlchemy noise when it shuts
down at exit) goes to a log file under PREFECT_HOME instead of the console, unless
REELFORGE_DEBUG=1. (`python -m flows.render` first tries the machine's shared API,
flows/runtime/local_api.py; this is the path with REELFORGE_SHARED_API=0, for series and in-process
renders.)
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

from flows.runtime.hydra_cli import Terminated, debug_enabled, stop_on_sigterm

DEFAULT_STARTUP_TIMEOUT_S = 120  # Prefect's own default is 20 s
PREFECT_DEFAULT_TIMEOUT_S = 20
ATTEMPTS = 2  # the first start and one retry
TIMEOUT_SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"


class PrefectUnavailable(RuntimeError):
    """Prefect's API could not be reached or started; `user_message` says why and what to do."""

    def __init__(self, cause: str) -> None:
        self.cause = cause
        self.user_message = (
            f"Prefect's local API server did not start: {cause}. Nothing was rendered. "
            f"Fixes: give it longer ({TIMEOUT_SETTING}=300), or run one server for every "
            "render on this machine: `prefect server start` in another terminal, then "
            "`export PREFECT_API_URL=http://127.0.0.1:4200/api` (or `prefect config set "
            "PREFECT_API_URL=...`).")
        super().__init__(self.user_message)


def startup_timeout() -> int:
    """Seconds to wait for the ephemeral server: the user's Prefect setting when it is set
    (environment or profile), else DEFAULT_STARTUP_TIMEOUT_S."""
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

    value = int(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())
    if TIMEOUT_SETTING in os.environ or value != PREFECT_DEFAULT_TIMEOUT_S:
        return max(1, value)
    return DEFAULT_STARTUP_TIMEOUT_S


def _server_log() -> Path:
    from prefect.settings import PREFECT_HOME

    home = Path(PREFECT_HOME.value()).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home / "reelforge-ephemeral-api.log"


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """File descriptor 2 points at `path` while a child process is spawned (it inherits it)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _quiet_spawn(server: Any) -> None:
    """The server process writes its stderr to a log file, not the user's console."""
    if debug_enabled() or getattr(server, "_reelforge_quiet", False):
        return
    spawn = server._run_uvicorn_command
    log = _server_log()

    @functools.wraps(spawn)
    def quiet():
        with _stderr_to(log):
            return spawn()

    server._run_uvicorn_command = quiet
    server._reelforge_quiet = True


def ensure_api(report: Callable[[str], None] | None = None,
               attempts: int = ATTEMPTS) -> str | None:
    """Make sure flows can reach an API; returns its URL. With PREFECT_API_URL set (a server,
    Prefect Cloud, the test harness) there is nothing to do. Otherwise start the ephemeral server
    that Prefect's client would start on first use (the same singleton, so the client reuses
    it), waiting `startup_timeout()` seconds, `attempts` times. Raises PrefectUnavailable."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    report = report or (lambda line: print(line, file=sys.stderr))
    url = PREFECT_API_URL.value()
    if url:
        return url
    if not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        raise PrefectUnavailable("PREFECT_API_URL is not set and Prefect's ephemeral mode is off "
                                 "(PREFECT_SERVER_ALLOW_EPHEMERAL_MODE=false)")
    from prefect.server.api.server import SubprocessASGIServer

    timeout = startup_timeout()
    cause = "unknown"
    for attempt in range(1, attempts + 1):
        server = SubprocessASGIServer()
        if server.running and server.server_process is not None:
            return server.api_url
        _quiet_spawn(server)
        try:
            server.start(timeout=timeout)
            return server.api_url
        except Exception as exc:  # noqa: BLE001 - a timeout, a crashed server, no free port
            cause = " ".join(str(exc).split())[:300] or type(exc).__name__
            with contextlib.suppress(Exception):
                server.stop()  # the half-started process goes; the next try starts afresh
            if attempt < attempts:
                report(f"warning: Prefect's local API did not start within {timeout}s "
                       f"({cause}); trying again (attempt {attempt + 1} of {attempts})")
    raise PrefectUnavailable(f"{cause} (tried {attempts} times, {timeout}s each)")


def quiet_console_tracebacks() -> None:
    """The console handlers (Prefect's, and the one Hydra puts on the root logger) print a
    task's or flow's failure in one line, without the traceback (the API, and so the Prefect
    UI, still gets it); REELFORGE_DEBUG=1 keeps them."""
    if debug_enabled():
        return
    seen = set()
    names = [n for n in logging.root.manager.loggerDict if n.startswith("prefect")]
    for logger in [logging.root, *map(logging.getLogger, names)]:
        for handler in logger.handlers:
            # Prefect's console handlers and the plain one Hydra's job logging puts on the root
            # logger; not other subclasses (pytest's capture handlers, a user's own).
            if id(handler) in seen or not (type(handler) is logging.StreamHandler or (
                    isinstance(handler, logging.StreamHandler)
                    and type(handler).__module__.startswith("prefect."))):
                continue
            seen.add(id(handler))
            if not any(isinstance(f, _NoTraceback) for f in handler.filters):
                handler.addFilter(_NoTraceback())


class _NoTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # The console handler sits on the `prefect` logger, so the API handlers of the run
        # loggers below it have already sent the record, traceback included.
        record.exc_info, record.exc_text = None, None
        return True


# --- SIGTERM and Ctrl-C inside a flow -----------------------------------------------------------


CANCELLED_MESSAGE = ("Stopped by SIGTERM: segments being rendered were discarded, finished ones "
                     "are cached; run again to resume")
INTERRUPTED_MESSAGE = ("Stopped by Ctrl-C: segments being rendered were discarded, finished ones "
                       "are cached; run again to resume")


def cancel_on_sigterm(fn: Callable[..., Any]) -> Callable[..., Any]:
    """For a flow function (under @flow): SIGTERM or Ctrl-C (SIGINT) while it runs stops it
    cleanly and the run ends Cancelled, not Crashed. Prefect's engine installs its own SIGTERM
    handler around the flow (a crash); this one, installed inside, takes precedence while the
    function runs. Ctrl-C's handler (flows/runtime/stop.py) raises KeyboardInterrupt, which
    Prefect would record as a crash: caught here, it becomes the Cancelled state, and the
    caller (run_flow) turns Prefect's CancelledRun back into KeyboardInterrupt."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from prefect.states import Cancelled

        with stop_on_sigterm():
            try:
                return fn(*args, **kwargs)
            except Terminated:
                return Cancelled(message=CANCELLED_MESSAGE)
            except KeyboardInterrupt:
                return Cancelled(message=INTERRUPTED_MESSAGE)

    return wrapper

"""One local Prefect API for every render on this machine, started on first use.

Without PREFECT_API_URL, Prefect starts a temporary API server inside every process (5-9 s on an
idle 2-core machine, far more when it is busy), and concurrent renders each start their own. Here
the first render starts one server in the background (`python -m flows.runtime.local_api serve`),
records it in `$PREFECT_HOME/reelforge-api.json`, and later and concurrent renders use it: a cached
rerun then skips the server start. The server stops itself after REELFORGE_SHARED_API_IDLE_S
seconds (default 900) without requests and without a render attached: each render holds a shared
lock on `$PREFECT_HOME/reelforge-api.users` while it runs, so a long segment never loses its API.

Opt out with REELFORGE_SHARED_API=0 (each render then starts Prefect's own temporary server, as
Prefect does by default); a PREFECT_API_URL you set always wins. The server's output goes to
`$PREFECT_HOME/reelforge-api.log`. Nothing here imports prefect until the server runs, so the
URL can be set before the render imports it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

SHARED_ENV = "REELFORGE_SHARED_API"
IDLE_ENV = "REELFORGE_SHARED_API_IDLE_S"
SHARED_URL_ENV = "REELFORGE_SHARED_API_URL"  # the shared API serves no UI: no run links to it
DEFAULT_IDLE_S = 900
ATTEMPTS = 2

_users_fd: int | None = None  # this process's shared lock: "a render is using the server"


def enabled() -> bool:
    """Sharing is on unless opted out, PREFECT_API_URL is set, or prefect is already imported
    in this process (its settings are fixed then: a test harness, a series, a library caller)."""
    return (os.environ.get(SHARED_ENV, "1").strip().lower() not in ("0", "false", "no", "off")
            and not os.environ.get("PREFECT_API_URL") and "prefect" not in sys.modules)


def prefect_home() -> Path:
    home = Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def healthy(url: str, timeout: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _start_timeout() -> int:
    try:
        return max(1, int(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS",
                                         "120")))
    except ValueError:
        return 120


def _spawn(home: Path, port: int) -> subprocess.Popen:
    idle = os.environ.get(IDLE_ENV, str(DEFAULT_IDLE_S))
    with open(home / "reelforge-api.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "flows.runtime.local_api", "serve", str(port), idle],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                [str(Path(__file__).resolve().parents[2])]
                + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))))


def attach(report: Callable[[str], None] | None = None) -> str | None:
    """Point this process at the machine's shared API (PREFECT_API_URL), starting it if none
    runs; returns its URL, or None when sharing is off. Call before prefect is imported.
    Raises flows.runtime.prefect_api.PrefectUnavailable when it cannot start."""
    global _users_fd
    if not enabled():
        return None
    report = report or (lambda line: print(line, file=sys.stderr))
    home = prefect_home()
    if _users_fd is None:  # held until this process exits; the server waits for it
        _users_fd = os.open(home / "reelforge-api.users", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(_users_fd, fcntl.LOCK_SH)
    state_path = home / "reelforge-api.json"
    with open(home / "reelforge-api.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one starter at a time; the others then reuse it
        state = _read_state(state_path)
        if state and healthy(state.get("url", "")):
            os.environ["PREFECT_API_URL"] = os.environ[SHARED_URL_ENV] = state["url"]
            return state["url"]
        timeout, cause = _start_timeout(), "unknown"
        for attempt in range(1, ATTEMPTS + 1):
            port = _free_port()
            url = f"http://127.0.0.1:{port}/api"
            process = _spawn(home, port)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and process.poll() is None:
                if healthy(url, timeout=2.0):
                    state_path.write_text(json.dumps({"url": url, "pid": process.pid}),
                                          encoding="utf-8")
                    os.environ["PREFECT_API_URL"] = os.environ[SHARED_URL_ENV] = url
                    return url
                time.sleep(0.2)
            cause = (f"the server process exited with status {process.returncode}"
                     if process.poll() is not None else
                     f"no answer from {url} within {timeout}s")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
            process.wait()
            if attempt < ATTEMPTS:
                report(f"warning: the shared Prefect API did not start ({cause}); trying again "
                       f"(attempt {attempt + 1} of {ATTEMPTS})")
    from flows.runtime.prefect_api import PrefectUnavailable

    raise PrefectUnavailable(f"{cause} (tried {ATTEMPTS} times; its log: "
                             f"{home / 'reelforge-api.log'}; REELFORGE_SHARED_API=0 starts a "
                             "temporary server per render instead)")


# --- the server -------------------------------------------------------------------------------


class _Activity:
    """ASGI wrapper: when the last request ended, and how many are running."""

    def __init__(self, app) -> None:
        self.app, self.last, self.active = app, time.monotonic(), 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1
            self.last = time.monotonic()


def serve(port: int, idle_s: float) -> None:
    """Run Prefect's API (as its temporary server runs it: no UI) until idle for `idle_s`
    with no render attached."""
    os.environ.update({"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                       "PREFECT__SERVER_FINAL": "1"})
    import uvicorn
    from prefect.server.api.server import create_app

    activity = _Activity(create_app())
    server = uvicorn.Server(uvicorn.Config(activity, host="127.0.0.1", port=port,
                                           log_level="error", lifespan="on"))
    home = prefect_home()
    users = os.open(home / "reelforge-api.users", os.O_RDWR | os.O_CREAT, 0o644)

    def watch() -> None:
        while not server.should_exit:
            time.sleep(min(5.0, max(0.5, idle_s / 4)))
            if activity.active or time.monotonic() - activity.last < idle_s:
                continue
            try:  # no render holds the shared lock: nobody is using this server
                fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue
            state_path = home / "reelforge-api.json"
            state = _read_state(state_path)
            if state and state.get("pid") == os.getpid():
                state_path.unlink(missing_ok=True)
            server.should_exit = True  # the lock is held until the process exits

    threading.Thread(target=watch, daemon=True).start()
    server.run()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]), float(sys.argv[3]))
    else:
        print("usage: python -m flows.runtime.local_api serve PORT IDLE_SECONDS (renders start it "
              "themselves)", file=sys.stderr)
        sys.exit(2)

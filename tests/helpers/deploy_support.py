"""A real local Prefect server and its workers, as subprocesses, for deployment tests.

Every process gets its own PREFECT_HOME and PREFECT_API_URL in its environment (nothing is set in
the test process), is started in its own process group, and carries a marker variable; `stop()`
ends the process groups it started and then any flow-run process that carries the marker (process
workers start flow runs in new sessions), so a failing test leaves nothing running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _die_with_parent() -> None:
    """In the child before exec (Linux): get SIGTERM when the test process dies, even killed
    with SIGKILL or by a timeout, so no server or worker outlives the test run."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalPrefect:
    def __init__(self, root: Path, server_env: dict[str, str] | None = None) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.marker = uuid.uuid4().hex
        self.server_env = dict(server_env or {})
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def env(self, **extra: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        base.update({
            "PREFECT_HOME": str(self.root / "prefect-home"),
            "PREFECT_API_URL": self.url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PREFECT_UI_ENABLED": "false",
            "REELFORGE_TEST_MARKER": self.marker,
            "OMP_NUM_THREADS": "1",
        })
        base.update(extra)
        return base

    def spawn(self, name: str, args: list[str], cwd: Path = ROOT, **env: str) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "ab")
        proc = subprocess.Popen(args, cwd=cwd, env=self.env(**env), stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True,
                                preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        log.close()
        self.procs.append((name, proc))
        return proc

    def prefect(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "prefect", *args]

    def start_server(self, timeout: float = 90) -> None:
        self.spawn("server", self.prefect("server", "start", "--host", "127.0.0.1", "--port",
                                          str(self.port), "--no-ui"), **self.server_env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.25)
        raise TimeoutError(f"Prefect server did not start in {timeout}s:\n{self.log('server')}")

    def run(self, name: str, args: list[str], timeout: float = 120, **env: str
            ) -> subprocess.CompletedProcess:
        return subprocess.run(args, cwd=ROOT, env=self.env(**env), capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              start_new_session=True)

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def _marked_pids(self) -> list[int]:
        """Processes (flow runs in their own sessions) whose environment has our marker."""
        needle = f"REELFORGE_TEST_MARKER={self.marker}".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
        return pids

    def stop_process(self, name: str) -> None:
        """End one process group started as `name` (e.g. a worker) and forget it."""
        for entry in [e for e in self.procs if e[0] == name]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(entry[1].pid, signal.SIGTERM)
            try:
                entry[1].wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(entry[1].pid, signal.SIGKILL)
                entry[1].wait(timeout=5)
            self.procs.remove(entry)

    def stop(self) -> None:
        for _, proc in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 3  # then SIGKILL: these are throwaway test processes
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if Path("/proc").is_dir():
            for pid in self._marked_pids():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

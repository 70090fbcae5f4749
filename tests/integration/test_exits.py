"""Exit statuses that mean what they say (issue 12): 1 a failure (short message, no traceback
unless REELFORGE_DEBUG=1 or --debug), 2 only bad input, 143 a clean SIGTERM stop that Prefect
records as Cancelled and a rerun resumes, and a slow Prefect API start that is waited for and
retried, or named with its fix when it cannot start.

The renders run as subprocesses against the session's Prefect test API (PREFECT_API_URL), so each
costs a Python start-up, not an ephemeral server; the start-up tests start (or fail to start)
real ephemeral servers on purpose. Every subprocess has a timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from stages.media.video_io import read_frames
from tests.helpers.boards import TINY
from tests.helpers.synthetic import write_png

ROOT = Path(__file__).resolve().parents[2]
FAULT_POINTS = ROOT / "tests" / "helpers" / "fault_points.py"

# `python -m flows.render` with a crash injected inside the flow body (not in a task): the
# manifest builder raises.
CRASH = """
import runpy, sys
import flows.pipeline.flow as render_flow
def boom(*args, **kwargs):
    raise ZeroDivisionError("injected crash")
render_flow.build_manifest = boom
sys.argv = ["flows.render"] + sys.argv[1:]
runpy.run_module("flows.render", run_name="__main__", alter_sys=True)
"""


def _env(**extra: str | None) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PREFECT_LOGGING_LEVEL="WARNING")
    for name in ("REELFORGE_DEBUG", "HYDRA_FULL_ERROR", "REELFORGE_FAULT"):
        env.pop(name, None)
    for name, value in extra.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _work(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    (work / "storyboards").mkdir(parents=True)
    (work / "storyboards" / "tiny.yaml").write_text(TINY)
    write_png(work / "storyboards" / "pic.png", 96, 64)
    return work


def _run(command: list[str], cwd: Path, env: dict[str, str],
         timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, start_new_session=True)


def _report(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def _api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


@pytest.mark.usefixtures("prefect_harness")
def test_a_crash_inside_the_flow_exits_1_with_a_short_message(tmp_path: Path):
    work = _work(tmp_path)
    command = [sys.executable, "-c", CRASH, "storyboard=tiny", "workers=1", "retries=0"]
    result = _run(command, work, _env(PREFECT_API_URL=_api_url()))
    report = _report(result)
    assert result.returncode == 1, report
    assert "error: the render of tiny failed: ZeroDivisionError: injected crash" in result.stderr
    assert "REELFORGE_DEBUG=1" in result.stderr, report  # says how to see more
    assert "Traceback" not in result.stderr + result.stdout, report
    assert "fix the command line" not in result.stderr, report  # not "bad input"

    # --debug (taken off the command line before Hydra sees it) shows the traceback.
    result = _run(command + ["--debug"], work, _env(PREFECT_API_URL=_api_url()))
    assert result.returncode == 1, _report(result)
    assert "Traceback" in result.stderr and "injected crash" in result.stderr, _report(result)


def test_bad_input_exits_2(tmp_path: Path):
    work = _work(tmp_path)
    for args in (["storyboard=tiny", "fsp=16"], ["storyboard=nope"]):
        result = _run([sys.executable, "-m", "flows.render", *args], work, _env(), timeout=120)
        assert result.returncode == 2, _report(result)
        assert "Traceback" not in result.stderr, _report(result)


@pytest.mark.usefixtures("prefect_harness")
def test_sigterm_stops_cleanly_with_143_and_a_rerun_resumes(tmp_path: Path):
    from prefect import get_client
    from prefect.client.schemas.sorting import FlowRunSort

    work = _work(tmp_path)
    log = tmp_path / "engine.log"
    overrides = ["storyboard=tiny", "workers=1", "retries=0"]
    env = _env(PREFECT_API_URL=_api_url(), REELFORGE_ENGINE_LOG=str(log),
               REELFORGE_FAULT="sigterm@generate:two:0:3")
    # SIGTERM to the render, from inside the engine in the middle of the second segment.
    result = _run([sys.executable, str(FAULT_POINTS), *overrides], work,
                  env)
    report = _report(result)
    assert result.returncode == 143, report
    assert "Stopped by SIGTERM" in result.stderr and "Cancelled" in result.stderr, report
    assert "Traceback" not in result.stderr and "Crash detected" not in result.stderr, report
    assert log.read_text().split() == ["one_0", "two_0"], report

    # Prefect recorded the run as Cancelled, not Crashed.
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=50)
    ours = [r for r in runs if (r.parameters.get("settings") or {}).get("cwd") == str(work)]
    assert ours and ours[0].state is not None, [r.name for r in runs]
    assert ours[0].state.type.value == "CANCELLED", ours[0].state

    # The rerun renders only the segment that was stopped.
    log.unlink()
    env["REELFORGE_FAULT"] = ""  # no fault: fault_points.py only logs the engine's calls
    result = _run([sys.executable, str(FAULT_POINTS), *overrides], work,
                  env)
    assert result.returncode == 0, _report(result)
    assert "1 rendered, 1 cached" in result.stdout, _report(result)
    assert log.read_text().split() == ["two_0"]


SERIES_EPISODE = """
fps: 8
resolution: 64x64
shots:
  - {id: one, prompt: "episode {name}", frames: 9}
  - {id: two, start: chain, prompt: "and then", frames: 9}
"""


@pytest.mark.usefixtures("prefect_harness")
def test_sigterm_stops_a_series_cleanly_and_no_further_episode_starts(tmp_path: Path):
    from prefect import get_client
    from prefect.client.schemas.sorting import FlowRunSort

    work = tmp_path / "work"
    boards = work / "boards"
    boards.mkdir(parents=True)
    for name in ("sa", "sb"):
        (boards / f"{name}.yaml").write_text(SERIES_EPISODE.replace("{name}", name))
    log = tmp_path / "engine.log"
    env = _env(PREFECT_API_URL=_api_url(), REELFORGE_ENGINE_LOG=str(log),
               REELFORGE_FAULT_RUN="flows.series", REELFORGE_FAULT="sigterm@generate:two:0:3")
    result = _run([sys.executable, str(FAULT_POINTS), "series=demo",
                   f"storyboards_dir={boards}", "output_dir=out", "post=none", "retries=0",
                   "series.episodes=[sa,sb]"], work, env)
    report = _report(result)
    assert result.returncode == 143, report
    assert "Stopped by SIGTERM" in result.stderr, report
    assert "Traceback" not in result.stderr and "Crash detected" not in result.stderr, report
    # Episode sa stopped in its second segment; sb never started.
    assert log.read_text().split() == ["one_0", "two_0"], report
    assert not (work / "out" / "sb").exists() and not (work / "out" / "sa" / "sa.mp4").exists()

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=50)
    series_runs = [r for r in runs if r.parameters.get("series") == "demo"
                   and f"storyboards_dir={boards}" in (r.parameters.get("overrides") or [])]
    assert series_runs and series_runs[0].state is not None, [r.name for r in runs]
    assert series_runs[0].state.type.value == "CANCELLED", series_runs[0].state


def test_sigterm_stops_an_enhance_multirun_before_its_next_job(tmp_path: Path):
    """SIGTERM while the first job of `flows.enhance -m` writes: exit 143, nothing left at
    that job's output, and the second job never starts."""
    from stages.media.video_io import write_video
    from tests.helpers.post_media import panning

    write_video(tmp_path / "in.mp4", panning(24), 16, codec="h264", crf=10)
    env = _env(REELFORGE_FAULT_RUN="flows.enhance", REELFORGE_FAULT="sigterm@frames:10")
    result = _run([sys.executable, str(FAULT_POINTS), "-m",
                   "input=in.mp4", "output=a.mp4,b.mp4", "post=interpolate2x", "audio=none",
                   "hydra.sweep.dir=multirun"], tmp_path, env, timeout=180)
    report = _report(result)
    assert result.returncode == 143, report
    assert "Stopped by SIGTERM" in result.stderr, report
    assert "Traceback" not in result.stderr, report
    assert not (tmp_path / "a.mp4").exists() and not (tmp_path / "b.mp4").exists(), report
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(("a.mp4", ".a.mp4"))], \
        sorted(p.name for p in tmp_path.iterdir())


def test_a_slow_prefect_start_is_retried(monkeypatch, capsys):
    """The first start times out (as on a loaded machine), the retry succeeds; the half-started
    server is stopped in between, and the client then finds the running singleton."""
    import prefect.server.api.server as server_module
    from prefect.settings import (PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED,
                                  temporary_settings)

    from flows.runtime import prefect_api

    events = []

    class SlowServer:
        instance = None
        starts = 0

        def __new__(cls):
            if cls.instance is None:
                cls.instance = super().__new__(cls)
                cls.instance.running, cls.instance.server_process = False, None
            return cls.instance

        def _run_uvicorn_command(self):
            return object()

        def start(self, timeout=None):
            type(self).starts += 1
            events.append(("start", timeout))
            if type(self).starts == 1:
                raise RuntimeError("Timed out while attempting to connect to ephemeral Prefect "
                                   "API server.")
            self.running, self.server_process = True, self._run_uvicorn_command()

        def stop(self):
            events.append(("stop", None))
            type(self).instance = None

        api_url = "http://127.0.0.1:8999/api"

    monkeypatch.setattr(server_module, "SubprocessASGIServer", SlowServer)
    monkeypatch.delenv(prefect_api.TIMEOUT_SETTING, raising=False)
    with temporary_settings(updates={PREFECT_API_URL: None,
                                     PREFECT_SERVER_EPHEMERAL_ENABLED: True}):
        assert prefect_api.ensure_api() == SlowServer.api_url
    timeout = prefect_api.DEFAULT_STARTUP_TIMEOUT_S
    assert events == [("start", timeout), ("stop", None), ("start", timeout)]
    err = capsys.readouterr().err
    assert "did not start within" in err and "trying again (attempt 2 of 2)" in err


@pytest.mark.parametrize("shared,cause", [
    ("0", "Timed out while attempting to connect"),  # Prefect's temporary server, per process
    ("1", "no answer from http://127.0.0.1:"),  # the machine's shared one (flows/runtime/local_api.py)
])
def test_a_prefect_api_that_cannot_start_exits_1_with_the_cause_and_the_fix(tmp_path: Path,
                                                                          shared, cause):
    work = _work(tmp_path)
    env = _env(PREFECT_API_URL=None, PREFECT_HOME=str(tmp_path / "prefect-home"),
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1", REELFORGE_SHARED_API=shared)
    started = time.monotonic()
    result = _run([sys.executable, "-m", "flows.render", "storyboard=tiny"], work, env,
                  timeout=180)
    report = _report(result)
    assert result.returncode == 1, report
    assert "trying again (attempt 2 of 2)" in result.stderr, report
    assert cause in result.stderr, report
    assert "prefect server start" in result.stderr and "PREFECT_API_URL" in result.stderr
    assert "Traceback" not in result.stderr, report
    assert not (work / "renders").exists(), report  # nothing rendered
    assert time.monotonic() - started < 120


def _burner(seconds: int) -> subprocess.Popen:
    """4 processes spinning for `seconds` (bounded: they stop by themselves)."""
    return subprocess.Popen(
        [sys.executable, "-c", "import time, multiprocessing as m\n"
         f"def burn():\n    end = time.time() + {seconds}\n    while time.time() < end: pass\n"
         "ps = [m.Process(target=burn) for _ in range(4)]\n"
         "[p.start() for p in ps]\n[p.join() for p in ps]"],
        start_new_session=True)


def _wait_all(procs: list[subprocess.Popen], timeout: float) -> list[tuple[int, str, str]]:
    results = []
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        results.append((proc.returncode, out, err))
    return results


@pytest.mark.slow
@pytest.mark.parametrize("renders,shared", [(4, "0"), (10, "1")],
                         ids=["4-api-per-render", "10-shared-api"])
def test_concurrent_renders_on_a_busy_machine_all_succeed_and_render_nothing_twice(
        tmp_path: Path, renders: int, shared: str):
    """Load test: N renders of the same storyboard at once, into their own render folders but
    one cache, on a busy machine: beside a CPU burner (bounded in time) for 4, while 10 renders
    on 2 cores are load enough by themselves. Each starts its own
    temporary Prefect API (api-per-render) or all share the one the first starts (shared-api,
    the default outside tests). Before the fix most failed (10 of 10 at ten). Every render must
    exit 0 with the same episode, and the cache locks must make each segment render exactly once
    across all of them: the renders' `segments_rendered` add up to the storyboard's segments."""
    import json

    work = _work(tmp_path)
    burner = _burner(180) if renders < 10 else None
    try:
        procs = []
        for i in range(renders):
            home = tmp_path / ("home" if shared == "1" else f"home{i}")
            env = _env(PREFECT_API_URL=None, PREFECT_HOME=str(home), REELFORGE_SHARED_API=shared,
                       REELFORGE_SHARED_API_IDLE_S="5")
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "flows.render", "storyboard=tiny", "workers=1",
                 f"output_dir=out{i}", "cache_dir=cache"],
                cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                start_new_session=True))
        results = _wait_all(procs, timeout=540)
        for code, out, err in results:
            assert code == 0, f"exit {code}\n{out}\n{err}"
            assert "Traceback" not in err, err
        manifests = [json.loads((work / f"out{i}" / "tiny" / "manifest.json").read_text())
                     for i in range(renders)]
        segments = sum(len(shot["segments"]) for shot in manifests[0]["shots"])
        assert sum(m["segments_rendered"] for m in manifests) == segments, \
            [m["segments_rendered"] for m in manifests]
        assert len({m["key"] for m in manifests}) == 1
        # The same frames, from the same cache entries (the files differ in their metadata).
        episodes = {np.stack(list(read_frames(work / f"out{i}" / "tiny" / "tiny.mp4"))).tobytes()
                    for i in range(renders)}
        assert len(episodes) == 1
        if shared == "1":  # one server, started by whichever render came first
            assert (tmp_path / "home" / "reelforge-api.json").exists()
    finally:
        if burner is not None:
            os.killpg(burner.pid, signal.SIGKILL)
            burner.wait(timeout=30)
        for i in range(renders):
            _stop_shared_api(tmp_path / ("home" if shared == "1" else f"home{i}"))


def _stop_shared_api(home: Path) -> None:
    import json

    state = home / "reelforge-api.json"
    if state.exists():
        try:
            os.killpg(json.loads(state.read_text())["pid"], signal.SIGKILL)
        except (ProcessLookupError, ValueError, KeyError):
            pass


def test_renders_share_one_local_prefect_api_that_stops_when_idle(tmp_path: Path):
    """flows/runtime/local_api.py: the first render starts the machine's API in the background, the
    next reuses it (no server start), and the server exits once idle with no render attached."""
    import json

    work = _work(tmp_path)
    home = tmp_path / "prefect-home"
    env = _env(PREFECT_API_URL=None, PREFECT_HOME=str(home), REELFORGE_SHARED_API="1",
               REELFORGE_SHARED_API_IDLE_S="4")
    state = home / "reelforge-api.json"
    pid = None
    try:
        first = _run([sys.executable, "-m", "flows.render", "storyboard=tiny"], work, env)
        assert first.returncode == 0, _report(first)
        pid = json.loads(state.read_text())["pid"]
        second = _run([sys.executable, "-m", "flows.render", "storyboard=tiny"], work, env)
        assert second.returncode == 0, _report(second)
        assert "0 rendered, 2 cached" in second.stdout, _report(second)
        assert json.loads(state.read_text())["pid"] == pid  # the same server, reused
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.5)
        assert not _alive(pid), "the shared API did not stop when idle"
        assert not state.exists()
    finally:
        if pid is not None and _alive(pid):
            os.killpg(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as stopped.
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("raised,status", [
    (ZeroDivisionError("boom"), 1),
    (KeyboardInterrupt(), 130),
    ("terminated", 143),
])
def test_whatever_escapes_a_job_is_a_failure_or_a_stop_never_bad_input(raised, status, capsys,
                                                                       monkeypatch):
    """The wrapper every Hydra entry point (render, series, enhance) uses."""
    from flows.runtime.hydra_cli import Terminated, hydra_exit_code, job_status

    # Set (empty: off) so that undoing restores the environment after --debug changed it.
    monkeypatch.setenv("REELFORGE_DEBUG", "")
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(sys, "argv", ["prog", "--debug"] if status == 1 else ["prog"])
    codes: list[int] = []

    def main() -> None:  # as a @hydra.main body: Hydra would turn an escape into exit 1
        with job_status(codes, "the job"):
            raise Terminated() if raised == "terminated" else raised

    assert hydra_exit_code(main, codes, "HINT") == status
    err = capsys.readouterr().err
    assert "HINT" not in err
    if status == 1:  # --debug was taken off the command line and shows the traceback
        assert sys.argv == ["prog"] and "Traceback" in err and "ZeroDivisionError: boom" in err
    else:
        assert "run the same command again" in err and "Traceback" not in err


def test_hydra_refusing_the_command_line_is_bad_input(capsys):
    from flows.runtime.hydra_cli import hydra_exit_code

    def main() -> None:
        sys.exit(1)  # what Hydra does on a bad override, before any job runs

    assert hydra_exit_code(main, [], "HINT") == 2
    assert "HINT" in capsys.readouterr().err

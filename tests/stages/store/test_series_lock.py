"""The per-segment lock (stages/store/lock.py, CacheStore.lock) and the segment guard: two workers
never render the same segment; crashed holders do not block forever."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from flows.pipeline.segment_guard import gpu_limit_name, segment_guard
from stages.store.cache import CacheStore
from stages.store.temp_names import namespace_id
from stages.store.lock import FileLock, LocalLockFiles, LockOwner, LockTimeout

KEY = "ab" * 32


HOLD = """
import sys, time
from stages.store.cache import CacheStore
root, log, hold_s, key = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
with CacheStore(root).lock("segment", key):
    with open(log, "a") as fh:
        fh.write(f"{sys.argv[5]} start\\n")
    time.sleep(hold_s)
    with open(log, "a") as fh:
        fh.write(f"{sys.argv[5]} end\\n")
"""


def test_lock_excludes_other_processes(tmp_path):
    log = tmp_path / "log.txt"
    root = Path(__file__).resolve().parents[3]
    procs = [subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "cache"), str(log),
                               "0.2", KEY, str(n)], cwd=root, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(root)))
             for n in range(3)]
    for p in procs:
        assert p.wait(60) == 0, p.stderr.read()
    events = [line.split() for line in log.read_text().splitlines()]
    # Strictly alternating start/end of the same process: no two holders at once.
    assert [e[1] for e in events] == ["start", "end"] * 3
    assert all(events[i][0] == events[i + 1][0] for i in range(0, 6, 2))
    assert not (tmp_path / "cache" / "locks" / "segment" / f"{KEY}.lock").exists()


def _write_owner(path: Path, host: str, pid: int, expires: float) -> None:
    # Written from this PID namespace (the host's own pid numbers); see test_cache_faults.py for
    # holders in other containers that share the host name.
    path.parent.mkdir(parents=True, exist_ok=True)
    ns = namespace_id() if host == socket.gethostname() else f"{host}/-/-"
    path.write_bytes(LockOwner("old", host, pid, expires, ns).encode())


def test_a_lock_of_a_dead_process_on_this_host_is_broken_at_once(tmp_path):
    store = CacheStore(tmp_path, stale_lock_s=600)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _write_owner(store.lock_path("segment", KEY), socket.gethostname(), dead.pid,
                 time.time() + 600)
    started = time.monotonic()
    with store.lock("segment", KEY):
        pass
    assert time.monotonic() - started < 2


def test_an_expired_lock_of_another_host_is_broken_and_a_live_one_is_waited_for(tmp_path):
    path = tmp_path / "x.lock"
    _write_owner(path, "other-host", 1, time.time() - 1)
    with FileLock(LocalLockFiles(), str(path), stale_s=5):
        assert json.loads(path.read_bytes())["host"] == socket.gethostname()
    _write_owner(path, "other-host", 1, time.time() + 60)
    with pytest.raises(LockTimeout, match="other-host"):
        FileLock(LocalLockFiles(), str(path), stale_s=60, poll_s=0.05, timeout_s=0.3).acquire()


def test_the_holder_renews_its_lock_while_it_works(tmp_path):
    path = str(tmp_path / "x.lock")
    holder = FileLock(LocalLockFiles(), path, stale_s=0.4)
    holder.acquire()
    try:
        time.sleep(1.0)  # well past stale_s: only the heartbeat keeps it fresh
        with pytest.raises(LockTimeout):
            FileLock(LocalLockFiles(), path, stale_s=0.4, poll_s=0.05, timeout_s=0.3).acquire()
    finally:
        holder.release()
    assert not Path(path).exists()


def test_guard_lets_one_of_two_racing_workers_render_a_segment(tmp_path, monkeypatch):
    from engine.preview import PreviewEngine
    from flows.pipeline.prepare import prepare
    from flows.config.settings import RenderSettings
    from stages.render.steps import render_segment

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("REELFORGE_GPU_LIMIT", raising=False)
    (tmp_path / "ep.yaml").write_text("fps: 8\nresolution: 64x64\nshots:\n"
                                      "  - {id: a, prompt: race, frames: 5}\n")
    calls = []

    class Slow(PreviewEngine):
        def generate(self, request, progress=None):
            calls.append(request.prompt)
            time.sleep(0.3)
            return super().generate(request, progress)

    job = prepare(RenderSettings(storyboard=str(tmp_path / "ep.yaml"), cwd=str(tmp_path))
                  ).plan.shots[0].segments[0]
    results = []

    def worker(n: int) -> None:
        store = CacheStore(tmp_path / "shared-cache")  # each worker its own store object
        with segment_guard(store, job.key):
            results.append(render_segment(job, None, Slow(), store))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert calls == ["race"]
    assert sorted(r.cached for r in results) == [False, True]


def test_gpu_limit_name_follows_the_worker_environment():
    host = socket.gethostname().lower()
    assert gpu_limit_name({}) is None
    assert gpu_limit_name({"CUDA_VISIBLE_DEVICES": ""}) is None
    name = gpu_limit_name({"CUDA_VISIBLE_DEVICES": "1"})
    assert name.startswith("gpu-") and name.endswith("-1")
    assert host.split(".")[0].replace("_", "-") in name
    assert gpu_limit_name({"CUDA_VISIBLE_DEVICES": "2,3"}).endswith("-2_3")
    assert gpu_limit_name({"CUDA_VISIBLE_DEVICES": "0", "REELFORGE_GPU_LIMIT": "big-gpu"}) == \
        "big-gpu"
    assert gpu_limit_name({"CUDA_VISIBLE_DEVICES": "0", "REELFORGE_GPU_LIMIT": ""}) is None

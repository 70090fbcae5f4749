"""Fault injection on the cache and its locks (issue 12): a damaged entry is rebuilt, dead
writers' temps go at the next run, a full disk and a read-only cache say so, and a lock holder in
another PID namespace with our host name and pid is never taken for dead while it beats."""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import pytest

import stages.store.cache as cache_mod
from stages.store.temp_names import (deleting_sibling, is_leftover_name, is_temp_name,
                                     leftover_is_dead, namespace_id, scratch_beside,
                                     temp_sibling, writer_tag)
from stages.store.cache import META, CacheReadOnly, CacheStore, DiskFull
from stages.store.lock import FileLock, LocalLockFiles, LockOwner, LockTimeout
from stages.store.output_paths import remove_dead_temps

KEY = "cd" + "1" * 62
Usage = namedtuple("Usage", "total used free")


def put_entry(store: CacheStore, key: str = KEY, data: bytes = b"pixels" * 50) -> None:
    with store.put("segment", key, {"frames": 3}) as tmp:
        (tmp / "clip.mkv").write_bytes(data)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# -- an entry without valid metadata -----------------------------------------------------------


@pytest.mark.parametrize("damage", ["deleted", "empty", "no_files", "files_not_a_dict"])
def test_an_entry_without_valid_meta_reads_as_absent_and_is_rebuilt(tmp_path, caplog, damage):
    store = CacheStore(tmp_path)
    put_entry(store, data=b"old")
    meta = store.entry_dir("segment", KEY) / META
    if damage == "deleted":
        meta.unlink()
    elif damage == "empty":
        meta.write_text("")
    elif damage == "no_files":
        meta.write_text(json.dumps({"kind": "segment"}))
    else:
        meta.write_text(json.dumps({"kind": "segment", "files": ["clip.mkv"]}))
    with caplog.at_level(logging.WARNING):
        assert store.get("segment", KEY) is None
    assert "rendering it again" in caplog.text
    assert not store.has("segment", KEY)
    put_entry(store, data=b"new")  # before the fix: "vanished right after it was written"
    entry = store.published("segment", KEY)
    assert entry.file("clip.mkv").read_bytes() == b"new"


def test_put_replaces_a_folder_without_meta_that_get_never_saw(tmp_path):
    """A worker that checked `get` before the folder got damaged still publishes its entry."""
    store = CacheStore(tmp_path)
    put_entry(store, data=b"old")
    (store.entry_dir("segment", KEY) / META).unlink()
    put_entry(store, data=b"new")
    assert store.get("segment", KEY).file("clip.mkv").read_bytes() == b"new"
    put_entry(store, data=b"newer")  # a valid entry is still kept: first published wins
    assert store.get("segment", KEY).file("clip.mkv").read_bytes() == b"new"


# -- leftovers of dead writers ------------------------------------------------------------------


def _temp_dir(store: CacheStore, pid: int, tag: str) -> Path:
    path = store.entry_dir("segment", KEY).with_name(f".{KEY}.tmp-{pid}-{tag}0badcafe")
    path.mkdir(parents=True)
    (path / "clip.mkv").write_bytes(b"partial")
    return path


def test_temps_of_dead_writers_go_at_the_next_run_live_and_foreign_ones_stay(tmp_path):
    store = CacheStore(tmp_path)
    dead = _temp_dir(store, dead_pid(), writer_tag())
    live = _temp_dir(store, os.getpid(), writer_tag())
    # Same pid as a dead one of ours, but written in another container: not provably dead.
    foreign = _temp_dir(store, dead_pid(), "0" * 8 if writer_tag() != "0" * 8 else "1" * 8)
    old_foreign = _temp_dir(store, 12345, "2" * 8 if writer_tag() != "2" * 8 else "3" * 8)
    stamp = time.time() - 2 * 3600
    for p in (old_foreign, old_foreign / "clip.mkv"):
        os.utime(p, (stamp, stamp))
    lock_tmp = store.lock_path("segment", KEY)
    lock_tmp.parent.mkdir(parents=True)
    lock_tmp = lock_tmp.with_name(f".{lock_tmp.name}.tmp-{dead_pid()}-{writer_tag()}00000000")
    lock_tmp.write_bytes(b"{}")
    deleting = store.entry_dir("segment", "ce" + "0" * 62)
    deleting = deleting.with_name(f".{deleting.name}.deleting-{dead_pid()}-{writer_tag()}")
    deleting.mkdir(parents=True)

    removed = set(store.remove_dead_temps())
    assert removed == {dead, old_foreign, lock_tmp, deleting}
    assert live.exists() and foreign.exists()


def test_temp_names_carry_the_writer_namespace(tmp_path):
    path = temp_sibling(tmp_path / "x.mkv")
    assert f".tmp-{os.getpid()}-{writer_tag()}" in path.name and path.name.endswith(".mkv")
    path.write_bytes(b"x")
    assert not leftover_is_dead(path)  # ours, and we are alive
    assert not leftover_is_dead(tmp_path / "clip.mkv")  # not a temp name at all


def test_every_name_the_writers_make_is_read_back_as_a_leftover(tmp_path):
    # stages.store.temp_names both writes and parses these names: what it writes, it recognises.
    final = tmp_path / "clip.mkv"
    temp = temp_sibling(final)
    folder = temp_sibling(tmp_path / "entry", keep_suffix=False)
    scratch = scratch_beside(temp, ".ffmeta")
    doomed = deleting_sibling(tmp_path / "entry")
    for name in (temp.name, folder.name, scratch.name):
        assert is_temp_name(name) and is_leftover_name(name), name
    assert is_leftover_name(doomed.name) and not is_temp_name(doomed.name)
    assert not is_leftover_name(final.name) and not is_temp_name(final.name)
    scratch.write_bytes(b"x")
    assert not leftover_is_dead(scratch)  # the writer (this process) is alive
    assert leftover_is_dead(scratch, alive=lambda pid: False)


def test_dead_render_folder_temps_go_but_not_a_live_writer_in_another_container(tmp_path):
    folder = tmp_path / "ep"
    (folder / "shots").mkdir(parents=True)
    mine = folder / "shots" / f".a.mp4.tmp-{dead_pid()}-{writer_tag()}12345678.mp4"
    tag = "f" * 8 if writer_tag() != "f" * 8 else "e" * 8  # another container's
    other = folder / "shots" / f".b.mp4.tmp-{dead_pid()}-{tag}12345678.mp4"
    for p in (mine, other):
        p.write_bytes(b"x")
    assert remove_dead_temps(folder) == [mine]
    assert other.exists()


# -- a full disk, a read-only cache ------------------------------------------------------------


def test_a_full_disk_says_disk_full_with_the_figures(tmp_path, monkeypatch):
    store = CacheStore(tmp_path)
    monkeypatch.setattr(cache_mod, "_disk_usage", lambda path: Usage(500 * 10**9, 0, 12_000))
    with pytest.raises(DiskFull) as info:
        with store.put("segment", KEY) as tmp:
            (tmp / "clip.mkv").write_bytes(b"x" * 3000)
            raise OSError(errno.ENOSPC, "No space left on device")
    message = str(info.value)
    assert "disk full" in message and "12.0 kB free of 500.0 GB" in message
    assert "3.0 kB of it written" in message and "prune" in message
    assert info.value.errno == errno.ENOSPC
    assert not list(tmp_path.rglob(".*tmp-*")), "the temp folder was left behind"


@pytest.mark.parametrize("failure", [
    BrokenPipeError(errno.EPIPE, "Broken pipe"),
    RuntimeError("ffmpeg exited with status 228 while writing /x/.clip.mkv.tmp (codec ffv1)"),
])
def test_an_encoder_dying_on_a_full_disk_says_disk_full(tmp_path, monkeypatch, failure):
    store = CacheStore(tmp_path)
    monkeypatch.setattr(cache_mod, "_disk_usage", lambda path: Usage(10**9, 10**9, 0))
    with pytest.raises(DiskFull, match=r"disk full .*0 B free of 1\.0 GB"):
        with store.put("segment", KEY):
            raise failure


def test_a_broken_pipe_with_room_on_the_disk_stays_what_it_was(tmp_path, monkeypatch):
    store = CacheStore(tmp_path)
    monkeypatch.setattr(cache_mod, "_disk_usage", lambda path: Usage(10**12, 0, 10**12))
    with pytest.raises(BrokenPipeError):
        with store.put("segment", KEY):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")


def _read_only_below(monkeypatch, root: Path) -> None:
    """Tests run as root, where chmod stops nothing: refuse creating anything below `root`."""
    real_mkdir, real_open = os.mkdir, os.open

    def mkdir(path, *args, **kw):
        if str(path).startswith(str(root) + os.sep):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_mkdir(path, *args, **kw)

    def open_(path, flags, *args, **kw):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and str(path).startswith(str(root)):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)


def test_a_read_only_cache_says_so(tmp_path, monkeypatch):
    store = CacheStore(tmp_path / "cache")
    (tmp_path / "cache").mkdir()
    _read_only_below(monkeypatch, tmp_path / "cache")
    with pytest.raises(CacheReadOnly, match="not writable \\(read-only file system\\).*cache_dir="):
        with store.put("segment", KEY):
            pytest.fail("the body must not run")
    with pytest.raises(CacheReadOnly, match="render lock"):
        with store.lock("segment", KEY):
            pass
    assert store.get("segment", KEY) is None  # reading still works
    assert store.remove_dead_temps() == []


# -- lock owners across PID namespaces ---------------------------------------------------------


def _write_owner(path: Path, pid: int, expires: float, ns: str | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(LockOwner("other", socket.gethostname(), pid, expires, ns, "p").encode())


def test_a_live_holder_in_another_container_with_our_host_and_pid_is_waited_for(tmp_path):
    path = tmp_path / "x.lock"
    pid = dead_pid()  # not running here; in the other container it is the holder
    _write_owner(path, pid, time.time() + 60, ns="other-host/boot/pid:[4026532999]")
    with pytest.raises(LockTimeout):
        FileLock(LocalLockFiles(), str(path), stale_s=60, poll_s=0.05, timeout_s=0.3).acquire()
    # Even our own pid: in another namespace it is another process.
    _write_owner(path, os.getpid(), time.time() + 60, ns="elsewhere")
    with pytest.raises(LockTimeout):
        FileLock(LocalLockFiles(), str(path), stale_s=60, poll_s=0.05, timeout_s=0.3).acquire()
    # A lock file without a namespace (older writers): only the heartbeat decides.
    _write_owner(path, pid, time.time() + 60, ns=None)
    with pytest.raises(LockTimeout):
        FileLock(LocalLockFiles(), str(path), stale_s=60, poll_s=0.05, timeout_s=0.3).acquire()
    # Its heartbeat stops: broken once it expires.
    _write_owner(path, pid, time.time() - 1, ns="other-host/boot/pid:[4026532999]")
    with FileLock(LocalLockFiles(), str(path), stale_s=5):
        owner = LockOwner.decode(path.read_bytes())
        assert owner.ns == namespace_id() and owner.pid == os.getpid()


def test_a_dead_holder_of_this_namespace_is_broken_at_once(tmp_path):
    path = tmp_path / "x.lock"
    _write_owner(path, dead_pid(), time.time() + 600, ns=namespace_id())
    started = time.monotonic()
    with FileLock(LocalLockFiles(), str(path), stale_s=600, poll_s=0.05):
        pass
    assert time.monotonic() - started < 2
    # Our own pid written by an earlier process (pid reused): its process token differs.
    _write_owner(path, os.getpid(), time.time() + 600, ns=namespace_id())
    with FileLock(LocalLockFiles(), str(path), stale_s=600, poll_s=0.05, timeout_s=2):
        pass


def test_two_workers_same_host_and_pid_different_namespaces_never_both_hold(tmp_path):
    """Two holders whose host name and pid are equal but whose PID namespaces differ (two GPU
    containers with host networking): the second waits for the first's release."""
    path = str(tmp_path / "seg.lock")
    first = FileLock(LocalLockFiles(), path, stale_s=60)
    first.ns = "host/boot/pid:[1]"
    first.acquire()
    second = FileLock(LocalLockFiles(), path, stale_s=60, poll_s=0.05, timeout_s=0.4)
    second.ns = "host/boot/pid:[2]"
    with pytest.raises(LockTimeout):
        second.acquire()
    first.release()
    second.timeout_s = 2
    second.acquire()
    second.release()

"""storage.root=: a shared folder or an fsspec URL for the cache and the outputs."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import fsspec
import pytest

from flows.config.settings import ConfigInvalid, RenderSettings
from flows.config.storage import FsspecLockFiles, MirroredStore, layout, open_storage
from stages.store.cache import CacheStore
from stages.store.lock import FileLock, LockTimeout

KEY = "cd" * 32


def settings(tmp_path: Path, **storage) -> RenderSettings:
    return RenderSettings(storyboard="x", cwd=str(tmp_path), storage=storage)


def test_layout_of_each_kind_of_root(tmp_path):
    plain = layout(settings(tmp_path))
    assert (plain.out_root, plain.cache_dir) == (tmp_path / "renders", tmp_path / "renders/.cache")
    shared = layout(settings(tmp_path, root="shared"))
    assert (shared.out_root, shared.cache_dir) == (tmp_path / "shared/renders",
                                                   tmp_path / "shared/cache")
    assert layout(settings(tmp_path, root=f"file://{tmp_path}/s")).cache_dir == tmp_path / "s/cache"
    remote = layout(settings(tmp_path, root="memory://bucket/rf/", local_cache="local"))
    assert remote.out_root == tmp_path / "local/renders"
    assert remote.remote_cache == "memory://bucket/rf/cache"
    assert remote.remote_outputs == "memory://bucket/rf/renders"
    _, store = open_storage(settings(tmp_path, root="shared", stale_lock_s=5))
    assert type(store) is CacheStore and store.stale_lock_s == 5
    with pytest.raises(ConfigInvalid, match="storage.stale_lock_s"):
        layout(settings(tmp_path, root="x", stale_lock_s=0))
    with pytest.raises(ConfigInvalid, match="storage.rot: unknown key"):
        layout(settings(tmp_path, rot="x"))
    with pytest.raises(ConfigInvalid, match="install the fsspec package"):
        open_storage(settings(tmp_path, root="nosuchproto://b/x"))


@pytest.fixture
def bucket():
    url = f"memory://reelforge-test-{uuid.uuid4().hex[:8]}"
    yield url
    fs = fsspec.filesystem("memory")
    if fs.exists(url):
        fs.rm(url, recursive=True)


def test_mirrored_store_shares_entries_and_locks_through_the_url(tmp_path, bucket):
    fs = fsspec.filesystem("memory")
    one = MirroredStore(tmp_path / "one", fs, f"{bucket}/cache", 60)
    two = MirroredStore(tmp_path / "two", fs, f"{bucket}/cache", 60)
    with one.put("segment", KEY, {"n": 1}) as tmp:
        (tmp / "clip.bin").write_bytes(b"pixels")
    assert fs.exists(f"{bucket}/cache/segment/{KEY[:2]}/{KEY}/meta.json")
    assert two.has("segment", KEY)
    entry = two.get("segment", KEY)  # pulled into two's local folder, checksums verified
    assert entry.file("clip.bin").read_bytes() == b"pixels"
    assert entry.path.is_relative_to(tmp_path / "two")

    lock_path = f"{bucket}/cache/locks/segment/{KEY}.lock"
    assert FsspecLockFiles(fs).create(lock_path, b"{}") is True
    assert FsspecLockFiles(fs).create(lock_path, b"{}") is False
    fs.rm_file(lock_path)
    with one.lock("segment", KEY):
        with pytest.raises(LockTimeout):
            FileLock(FsspecLockFiles(fs), lock_path, 60, poll_s=0.05, timeout_s=0.2).acquire()
    assert not fs.exists(lock_path)


@pytest.mark.usefixtures("prefect_harness")
def test_render_to_an_fsspec_url_is_reused_by_a_worker_with_an_empty_local_copy(tmp_path, bucket):
    from flows.render import EXIT_OK, run

    (tmp_path / "ep.yaml").write_text("fps: 8\nresolution: 64x64\nshots:\n"
                                      "  - {id: a, prompt: remote, frames: 5}\n"
                                      "  - {id: b, start: chain, prompt: more, frames: 5}\n")

    def render(local: str) -> dict:
        chosen = RenderSettings(storyboard=str(tmp_path / "ep.yaml"), cwd=str(tmp_path),
                                storage={"root": bucket, "local_cache": local}, retry_delay=0)
        assert run(chosen) == EXIT_OK
        return json.loads((tmp_path / local / "renders" / "ep" / "manifest.json").read_text())

    first = render("worker1")
    assert first["segments_rendered"] == 2
    fs = fsspec.filesystem("memory")
    assert fs.exists(f"{bucket}/renders/ep/ep.mp4")
    assert json.loads(fs.cat_file(f"{bucket}/renders/ep/manifest.json"))["key"] == first["key"]
    second = render("worker2")  # another machine: nothing local, everything from the URL
    assert (second["segments_rendered"], second["segments_cached"]) == (0, 2)
    assert second["key"] == first["key"]

"""The content-addressed cache: finished segments, post-processed shots and episodes by key.

An entry is a directory `<root>/<kind>/<key[:2]>/<key>/` holding its files and `meta.json`,
which lists every file's size and SHA-256. Entries are published with an atomic directory rename,
so a crash never leaves a half-written entry under the final name, and every read verifies the
checksums: a damaged entry is dropped with a warning and rendered again, never used.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from stages.atomic import atomic_dir, atomic_write_json
from stages.keys import file_sha256
from stages.lock import FileLock, LocalLockFiles

log = logging.getLogger(__name__)
META = "meta.json"


def _touch(path: Path) -> None:
    """Mark an entry as used now: `python -m flows.cache prune` removes the least recently used
    first. The entry's bytes and checksums are untouched."""
    try:
        os.utime(path)
    except OSError:
        pass  # a read-only cache is still a cache


@dataclass(frozen=True)
class CacheEntry:
    kind: str
    key: str
    path: Path
    meta: dict[str, Any]

    def file(self, name: str) -> Path:
        return self.path / name


class CacheStore:
    def __init__(self, root: Path | str, stale_lock_s: float = 120.0):
        self.root = Path(root)
        # A render lock not renewed for this long was left by a crashed worker (stages/lock.py).
        self.stale_lock_s = stale_lock_s

    def entry_dir(self, kind: str, key: str) -> Path:
        if not key or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"not a content key: {key!r}")
        return self.root / kind / key[:2] / key

    def get(self, kind: str, key: str, verify: bool = True) -> CacheEntry | None:
        """The entry if it exists and is intact; a damaged one is removed and None returned."""
        path = self.entry_dir(kind, key)
        meta_path = path / META
        if not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            for name, info in meta["files"].items():
                file = path / name
                if file.stat().st_size != info["size"]:
                    raise ValueError(f"{name} has {file.stat().st_size} bytes, expected {info['size']}")
                if verify and file_sha256(file) != info["sha256"]:
                    raise ValueError(f"{name} does not match its checksum")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("cache entry %s/%s is damaged (%s); rendering it again", kind, key[:12], exc)
            self.remove(kind, key)
            return None
        _touch(meta_path)
        return CacheEntry(kind, key, path, meta)

    def published(self, kind: str, key: str) -> CacheEntry:
        """The entry just written with `put` (no checksum pass); OSError if it is gone."""
        entry = self.get(kind, key, verify=False)
        if entry is None:
            raise OSError(f"cache entry {kind}/{key[:12]} vanished right after it was written")
        return entry

    def has(self, kind: str, key: str) -> bool:
        """Cheap existence check (no checksum pass), for plans and dry runs."""
        return (self.entry_dir(kind, key) / META).is_file()

    @contextlib.contextmanager
    def put(self, kind: str, key: str, info: dict[str, Any] | None = None) -> Iterator[Path]:
        """Yield a temp directory to write the entry's files into; publish it on success.

        If another process published the same key first, theirs is kept (same key, same pixels).
        """
        final = self.entry_dir(kind, key)
        with atomic_dir(final) as tmp:
            yield tmp
            files = {
                p.name: {"size": p.stat().st_size, "sha256": file_sha256(p)}
                for p in sorted(tmp.iterdir())
                if p.is_file() and p.name != META
            }
            atomic_write_json(tmp / META, {"kind": kind, "key": key, "files": files,
                                           "info": info or {}})

    def lock_path(self, kind: str, key: str) -> Path:
        self.entry_dir(kind, key)  # validates the key
        return self.root / "locks" / kind / f"{key}.lock"

    def lock(self, kind: str, key: str) -> FileLock:
        """An exclusive lock on producing entry `kind/key`, shared by every process (on any
        machine) that uses this cache folder: `with store.lock(...):` then check `get` again,
        since the previous holder has usually just published the entry."""
        return FileLock(LocalLockFiles(), str(self.lock_path(kind, key)), self.stale_lock_s)

    def remove(self, kind: str, key: str) -> None:
        path = self.entry_dir(kind, key)
        if path.exists():
            # Move aside first so a reader never sees a half-deleted entry with its meta.json.
            doomed = path.with_name(f".{path.name}.deleting-{os.getpid()}")
            try:
                os.rename(path, doomed)
            except OSError:
                doomed = path
            shutil.rmtree(doomed, ignore_errors=True)

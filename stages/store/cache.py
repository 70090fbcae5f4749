"""The content-addressed cache: finished segments, post-processed shots and episodes by key.

An entry is a directory `<root>/<kind>/<key[:2]>/<key>/` holding its files and `meta.json`,
which lists every file's size and SHA-256. Entries are published with an atomic directory rename,
so a crash never leaves a half-written entry under the final name, and every read verifies the
checksums: a damaged entry is dropped with a warning and rendered again, never used. A folder
under an entry's name without a valid meta.json (a copy interrupted by hand, a disk that lost the
file) is such a damaged entry: it reads as absent and the next `put` replaces it.

Write failures are explained where they happen: a full disk raises `DiskFull` (the free and
total bytes of the cache's disk), a read-only cache `CacheReadOnly`, instead of whatever the
failing writer said ("Broken pipe", "ffmpeg exited with status 228", a bare traceback). Temp
folders of writers that are gone are removed by `remove_dead_temps`, which a render calls before
it starts writing (stages.store.temp_names.leftover_is_dead decides who is gone).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from stages.media.atomic import atomic_dir, atomic_write_json, move_aside
from stages.plan.keys import file_sha256
from stages.store.lock import FileLock, LocalLockFiles
from stages.store.temp_names import leftover_is_dead

log = logging.getLogger(__name__)
META = "meta.json"
# The cache folders that hold entries or lock files, besides the `<kind>/` folders.
_NOT_KINDS = {"refs"}


class DiskFull(OSError):
    """The disk holding the cache (or the render folder) is full; the message has the figures."""


class CacheReadOnly(PermissionError):
    """The cache folder cannot be written (read-only mount or no permission)."""


def _human(count: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(count) < 1000 or unit == "TB":
            return f"{count:,.0f} {unit}" if unit == "B" else f"{count:,.1f} {unit}"
        count /= 1000
    return f"{count} B"


def _tree_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).lstat().st_size
    return total


# ffmpeg exits with 256 - errno when a write fails: status 228 is ENOSPC.
_FFMPEG_ENOSPC = f"status {256 - errno.ENOSPC}"
_NEARLY_FULL = 64 * 1024 * 1024


def _disk_usage(path: Path):
    return shutil.disk_usage(path)


def _existing(path: Path) -> Path:
    path = Path(path)
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def explain_write_error(exc: BaseException, folder: Path, what: str,
                        written: int | None = None,
                        setting: str = "cache_dir=") -> BaseException | None:
    """A `DiskFull` or `CacheReadOnly` with a clear message if `exc` (raised while writing into
    `folder`, which the `setting` override moves) is one of those, else None (then `exc`
    stands as it is)."""
    if isinstance(exc, (DiskFull, CacheReadOnly)):
        return None
    try:
        usage = _disk_usage(_existing(folder))
    except OSError:
        usage = None
    errno_ = getattr(exc, "errno", None)
    full = errno_ in (errno.ENOSPC, errno.EDQUOT)
    if not full and (isinstance(exc, BrokenPipeError) or (
            isinstance(exc, RuntimeError) and "ffmpeg" in str(exc))):
        # The encoder died mid-write: say "disk full" when it said so (status 228) or when the
        # disk has (almost) nothing left.
        full = _FFMPEG_ENOSPC in str(exc) or "No space left" in str(exc) or (
            usage is not None and usage.free < _NEARLY_FULL)
    if full:
        figures = (f"{_human(usage.free)} free of {_human(usage.total)}" if usage is not None
                   else "free space unknown")
        so_far = f"; {_human(written)} of it written when the disk filled" if written else ""
        return DiskFull(errno.ENOSPC, f"disk full (No space left on device) while writing {what} "
                        f"in {folder}: {figures} on that disk{so_far}. Free some space "
                        "(`python -m flows.cache prune --max-size 10GB` trims the cache) or "
                        f"point {setting} at a bigger disk")
    if errno_ in (errno.EROFS, errno.EACCES, errno.EPERM):
        reason = "read-only file system" if errno_ == errno.EROFS else "permission denied"
        return CacheReadOnly(errno_, f"cannot write {what}: {folder} is not writable ({reason}). "
                             f"Point {setting} at a writable folder" + (
                                 " (renders share a cache only if each can write to it)"
                                 if setting == "cache_dir=" else ""))
    return None


def _meta_ok(path: Path) -> bool:
    try:
        meta = json.loads((path / META).read_text(encoding="utf-8"))
        return isinstance(meta, dict) and isinstance(meta.get("files"), dict)
    except (OSError, ValueError):
        return False


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
        # A render lock not renewed for this long was left by a crashed worker (stages/store/lock.py).
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
            if path.is_dir() and not meta_path.is_file():
                # Published entries always have one (it is written before the folder is renamed
                # into place), so this is a damaged entry, not a half-written one.
                log.warning("cache entry %s/%s has no %s; rendering it again", kind, key[:12],
                            META)
                with contextlib.suppress(OSError):
                    self.remove(kind, key)
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            for name, info in meta["files"].items():
                file = path / name
                if file.stat().st_size != info["size"]:
                    raise ValueError(f"{name} has {file.stat().st_size} bytes, expected {info['size']}")
                if verify and file_sha256(file) != info["sha256"]:
                    raise ValueError(f"{name} does not match its checksum")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
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

        If another process published the same key first, theirs is kept (same key, same pixels);
        a damaged entry under that name (no valid meta.json) is replaced. A full disk raises
        DiskFull, a read-only cache CacheReadOnly, both with the figures and what to do.
        """
        final = self.entry_dir(kind, key)
        what = f"cache entry {kind}/{key[:12]}"
        try:
            with atomic_dir(final, replace_if=lambda p: not _meta_ok(p)) as tmp:
                try:
                    yield tmp
                    files = {
                        p.name: {"size": p.stat().st_size, "sha256": file_sha256(p)}
                        for p in sorted(tmp.iterdir())
                        if p.is_file() and p.name != META
                    }
                    atomic_write_json(tmp / META, {"kind": kind, "key": key, "files": files,
                                                   "info": info or {}})
                except (OSError, RuntimeError) as exc:
                    better = explain_write_error(exc, self.root, what, _tree_bytes(tmp))
                    if better is not None:
                        raise better from exc
                    raise
        except OSError as exc:  # creating the temp folder, renaming it into place
            better = explain_write_error(exc, self.root, what)
            if better is not None:
                raise better from exc
            raise

    def remove_dead_temps(self) -> list[Path]:
        """Delete what writers that are gone left in the cache: temp folders of unfinished
        entries, half-deleted entries, lock temp files (stages.store.temp_names.leftover_is_dead:
        a dead process of this PID namespace at once, one of elsewhere after an hour without
        change).
        A live writer's temps are left alone. Returns what was removed."""
        removed: list[Path] = []
        if not self.root.is_dir():
            return removed
        try:
            kinds = [p for p in self.root.iterdir() if p.is_dir() and p.name not in _NOT_KINDS]
        except OSError:
            return removed
        for kind_dir in kinds:
            for shard in _listdir(kind_dir):
                candidates = [shard] if shard.name.startswith(".") else (
                    _listdir(shard) if shard.is_dir() and not shard.is_symlink() else [])
                for path in candidates:
                    if path.name.startswith(".") and leftover_is_dead(path):
                        try:
                            if path.is_dir() and not path.is_symlink():
                                shutil.rmtree(path)
                            else:
                                path.unlink()
                        except FileNotFoundError:
                            continue
                        except OSError as exc:
                            log.warning("cannot remove leftover %s (%s)", path, exc)
                            continue
                        removed.append(path)
        if removed:
            log.warning("removed %d leftovers of interrupted writes from the cache %s",
                        len(removed), self.root)
        return removed

    def lock_path(self, kind: str, key: str) -> Path:
        self.entry_dir(kind, key)  # validates the key
        return self.root / "locks" / kind / f"{key}.lock"

    def lock(self, kind: str, key: str) -> FileLock:
        """An exclusive lock on producing entry `kind/key`, shared by every process (on any
        machine) that uses this cache folder: `with store.lock(...):` then check `get` again,
        since the previous holder has usually just published the entry."""
        return FileLock(_CacheLockFiles(self.root), str(self.lock_path(kind, key)),
                        self.stale_lock_s)

    def remove(self, kind: str, key: str) -> None:
        path = self.entry_dir(kind, key)
        if path.exists():
            # Move aside first so a reader never sees a half-deleted entry with its meta.json.
            move_aside(path)


def _listdir(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


class _CacheLockFiles(LocalLockFiles):
    """Lock files in the cache folder; a full or read-only cache says so."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def create(self, path: str, data: bytes) -> bool:
        try:
            return super().create(path, data)
        except OSError as exc:
            better = explain_write_error(exc, self.root, "a render lock")
            if better is not None:
                raise better from exc
            raise

"""Where the cache and the outputs live: `storage.root=` (conf/config.yaml), set once for every
worker.

- unset: as before, `output_dir` and `cache_dir` (default `<output_dir>/.cache`) from the working
  directory.
- a folder every worker reaches (NFS, SMB, a mounted bucket; `file://` URLs too): a relative
  `output_dir` lives under it, and the cache defaults to `<root>/cache`. Workers share finished
  segments and take a lock file per segment, so two workers never render the same one.
- an fsspec URL (`s3://bucket/reelforge`, `gs://...`, `az://...`; the protocol's fsspec package
  must be installed on every worker): each worker renders into a local copy (`storage.local_cache`,
  default a user cache folder) and mirrors it: a cache miss is looked up in `<url>/cache` before
  rendering, every new entry is uploaded (files first, `meta.json` last, so a half-uploaded entry
  never looks finished), the per-segment lock lives in `<url>/cache/locks` (created with fsspec's
  exclusive-create mode), and a finished render folder is uploaded to `<url>/<output_dir>/NAME/`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from flows.config.settings import ConfigInvalid, RenderSettings
from stages.media.atomic import atomic_dir
from stages.store.cache import META, CacheEntry, CacheStore
from stages.store.lock import FileLock

log = logging.getLogger(__name__)

DEFAULT_STALE_LOCK_S = 120.0


def is_remote(root: str | None) -> bool:
    """A URL that is not a local file: the storage is reached through fsspec."""
    return bool(root) and "://" in str(root) and not str(root).startswith("file://")


def _local_path(root: str) -> str:
    return root[len("file://"):] if root.startswith("file://") else root


def default_local_cache(url: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    slug = "".join(c if c.isalnum() else "-" for c in url.split("://", 1)[-1])[:40].strip("-")
    return base / "reelforge" / f"{slug}-{hashlib.sha256(url.encode()).hexdigest()[:10]}"


@dataclass(frozen=True)
class StorageConfig:
    root: str | None
    local_cache: str | None
    stale_lock_s: float

    @classmethod
    def of(cls, settings: RenderSettings) -> "StorageConfig":
        data = dict(settings.storage or {})
        unknown = sorted(set(data) - {"root", "local_cache", "stale_lock_s"})
        if unknown:
            raise ConfigInvalid(f"storage.{unknown[0]}: unknown key; known: storage.root, "
                                "storage.local_cache, storage.stale_lock_s")
        root = data.get("root")
        if root is not None and (not isinstance(root, str) or not root.strip()):
            raise ConfigInvalid(f"storage.root={root!r}: give a folder or an fsspec URL, e.g. "
                                "storage.root=/srv/shared/reelforge or storage.root=s3://bucket/rf")
        stale = data.get("stale_lock_s", DEFAULT_STALE_LOCK_S)
        if isinstance(stale, bool) or not isinstance(stale, (int, float)) or stale <= 0:
            raise ConfigInvalid(f"storage.stale_lock_s={stale!r}: must be a number of seconds > 0")
        return cls(root, data.get("local_cache"), float(stale))


@dataclass(frozen=True)
class Layout:
    """The folders one render uses on this machine, and where they mirror to (URL roots)."""

    out_root: Path
    cache_dir: Path
    remote_outputs: str | None = None  # URL that out_root mirrors to
    remote_cache: str | None = None  # URL that cache_dir mirrors to


def layout(settings: RenderSettings) -> Layout:
    config = StorageConfig.of(settings)
    if not config.root:
        out_root = settings.path(settings.output_dir)
        cache = settings.path(settings.cache_dir) if settings.cache_dir else out_root / ".cache"
        return Layout(out_root, cache)
    if not is_remote(config.root):
        base = settings.path(_local_path(config.root))
        return Layout(base / settings.output_dir, base / (settings.cache_dir or "cache"))
    url = config.root.rstrip("/")
    local = settings.path(config.local_cache) if config.local_cache else default_local_cache(url)
    out_root = local / settings.output_dir
    remote_outputs = None
    if not Path(settings.output_dir).is_absolute():
        remote_outputs = f"{url}/{Path(settings.output_dir).as_posix()}"
    cache = settings.path(settings.cache_dir) if settings.cache_dir else local / "cache"
    return Layout(out_root, cache, remote_outputs, f"{url}/cache")


def filesystem(url: str):
    """The fsspec filesystem for `url`; ConfigInvalid names the package to install."""
    import fsspec

    try:
        fs, _ = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise ConfigInvalid(f"storage.root={url}: {exc} (install the fsspec package for this "
                            "protocol, e.g. s3fs for s3://, gcsfs for gs://, adlfs for az://)"
                            ) from None
    return fs


def open_storage(settings: RenderSettings) -> tuple[Path, CacheStore]:
    """The output root and the cache store for a render with `settings`."""
    config = StorageConfig.of(settings)
    where = layout(settings)
    if where.remote_cache:
        store: CacheStore = MirroredStore(where.cache_dir, filesystem(where.remote_cache),
                                          where.remote_cache, config.stale_lock_s)
    else:
        store = CacheStore(where.cache_dir, config.stale_lock_s)
    return where.out_root, store


def upload_outputs(settings: RenderSettings, out_dir: Path) -> str | None:
    """Mirror a finished render folder to a URL root; returns its URL (None for folder roots)."""
    where = layout(settings)
    if not where.remote_outputs:
        return None
    relative = Path(out_dir).resolve().relative_to(where.out_root.resolve()).as_posix()
    target = f"{where.remote_outputs}/{relative}"
    fs = filesystem(target)
    files = sorted(p for p in Path(out_dir).rglob("*") if p.is_file() and not p.name.startswith("."))
    # The manifest last: a reader that sees the new manifest sees the files it names.
    files.sort(key=lambda p: p.name == "manifest.json")
    for path in files:
        fs.put_file(str(path), f"{target}/{path.relative_to(out_dir).as_posix()}")
    return target


class FsspecLockFiles:
    """stages.store.lock.LockFiles on an fsspec filesystem: exclusive create is mode 'xb'."""

    def __init__(self, fs) -> None:
        self.fs = fs

    def create(self, path: str, data: bytes) -> bool:
        try:
            self.fs.makedirs(self.fs._parent(path), exist_ok=True)
            with self.fs.open(path, "xb") as fh:
                fh.write(data)
            return True
        except FileExistsError:
            return False

    def read(self, path: str) -> bytes | None:
        try:
            return self.fs.cat_file(path)
        except FileNotFoundError:
            return None

    def replace(self, path: str, data: bytes) -> None:
        self.fs.pipe_file(path, data)

    def remove(self, path: str) -> None:
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            pass


class MirroredStore(CacheStore):
    """A local CacheStore that reads through to and writes through to a remote copy."""

    def __init__(self, local_root: Path, fs, remote_root: str, stale_lock_s: float) -> None:
        super().__init__(local_root, stale_lock_s)
        self.fs, self.remote_root = fs, remote_root.rstrip("/")

    def remote_dir(self, kind: str, key: str) -> str:
        self.entry_dir(kind, key)  # validates the key
        return f"{self.remote_root}/{kind}/{key[:2]}/{key}"

    def has(self, kind: str, key: str) -> bool:
        return super().has(kind, key) or self.fs.exists(f"{self.remote_dir(kind, key)}/{META}")

    def get(self, kind: str, key: str, verify: bool = True) -> CacheEntry | None:
        entry = super().get(kind, key, verify)
        if entry is not None or not self._pull(kind, key):
            return entry
        entry = super().get(kind, key, verify=True)
        if entry is None:  # the remote copy is damaged: drop it so the entry renders again
            log.warning("remote cache entry %s/%s is damaged; rendering it again", kind, key[:12])
            self.fs.rm(self.remote_dir(kind, key), recursive=True)
        return entry

    def _pull(self, kind: str, key: str) -> bool:
        remote = self.remote_dir(kind, key)
        try:
            meta_bytes = self.fs.cat_file(f"{remote}/{META}")
            meta = json.loads(meta_bytes)
            with atomic_dir(self.entry_dir(kind, key)) as tmp:
                for name in meta["files"]:
                    self.fs.get_file(f"{remote}/{name}", str(tmp / name))
                (tmp / META).write_bytes(meta_bytes)
        except FileNotFoundError:
            return False
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("remote cache entry %s/%s is unreadable (%s)", kind, key[:12], exc)
            return False
        return True

    def _push(self, kind: str, key: str) -> None:
        remote = self.remote_dir(kind, key)
        if self.fs.exists(f"{remote}/{META}"):
            return  # published by another worker first: same key, same pixels
        local = self.entry_dir(kind, key)
        names = sorted(p.name for p in local.iterdir() if p.is_file() and p.name != META)
        for name in [*names, META]:
            self.fs.put_file(str(local / name), f"{remote}/{name}")

    @contextlib.contextmanager
    def put(self, kind: str, key: str, info: dict[str, Any] | None = None) -> Iterator[Path]:
        with super().put(kind, key, info) as tmp:
            yield tmp
        self._push(kind, key)

    def lock(self, kind: str, key: str) -> FileLock:
        self.entry_dir(kind, key)
        path = f"{self.remote_root}/locks/{kind}/{key}.lock"
        return FileLock(FsspecLockFiles(self.fs), path, self.stale_lock_s)

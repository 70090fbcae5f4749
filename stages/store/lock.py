"""An exclusive lock held as a file, for workers on one machine or many sharing a folder.

Two workers that reach the same uncached segment must not both render it: the first creates the
lock file, the second waits until the lock is gone and then finds the segment in the cache.

- Creating is atomic: the content is written to a temp file first and hard-linked onto the lock
  name (`link` fails if the name exists, also on NFS), so a lock file is never seen half written.
- A holder renews `expires` in the file while it works (a heartbeat thread), so a lock whose
  `expires` has passed was left by a crashed or unreachable holder and may be broken. A lock held
  by a dead process of this very PID namespace is broken at once, without waiting for it to
  expire. The owner names its namespace (`ns`: host name, kernel boot id, PID namespace, see
  stages.store.temp_names.namespace_id): containers on one machine often share the host name
  (host networking) but not their pids, so "pid 812 on this host is not running" proves nothing
  about a holder in another container; there, and for lock files written before `ns` existed,
  only the heartbeat decides.
- Breaking re-reads the file and removes it only if it still holds the stale owner's token. Two
  waiters breaking the same stale lock at the same instant can, rarely, both go ahead: that costs
  one duplicate render, never a wrong result, because cache entries are published atomically and
  the first one published is kept.

The storage is behind `LockFiles`, so the same protocol runs on a local or network folder
(`LocalLockFiles`) and on an object store (flows/config/storage.py implements it with fsspec).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Protocol

from stages.store.liveness import pid_alive
from stages.store.temp_names import namespace_id, temp_sibling

log = logging.getLogger(__name__)


class LockFiles(Protocol):
    def create(self, path: str, data: bytes) -> bool:
        """Create `path` holding `data` if it does not exist; False if it does. Atomic."""

    def read(self, path: str) -> bytes | None:
        """The file's bytes, or None if it does not exist."""

    def replace(self, path: str, data: bytes) -> None:
        """Overwrite `path` (the holder's heartbeat)."""

    def remove(self, path: str) -> None:
        """Delete `path`; a missing file is fine."""


class LocalLockFiles:
    """Lock files in a local or network folder (NFS, SMB): temp file + hard link."""

    def _temp(self, path: Path, data: bytes) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_sibling(path, keep_suffix=False)
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        return tmp

    def create(self, path: str, data: bytes) -> bool:
        target = Path(path)
        tmp = self._temp(target, data)
        try:
            os.link(tmp, target)
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def read(self, path: str) -> bytes | None:
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            return None

    def replace(self, path: str, data: bytes) -> None:
        target = Path(path)
        os.replace(self._temp(target, data), target)

    def remove(self, path: str) -> None:
        Path(path).unlink(missing_ok=True)


# A random name for this process: a pid can be reused (by a later process, or by this one after
# a restart of its container), this token cannot.
PROCESS_TOKEN = secrets.token_hex(8)


@dataclass(frozen=True)
class LockOwner:
    token: str
    host: str
    pid: int
    expires: float  # seconds since the epoch; the holder pushes it forward while it works
    ns: str | None = None  # the holder's PID namespace (stages.store.temp_names.namespace_id)
    process: str | None = None  # the holder's PROCESS_TOKEN

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> "LockOwner | None":
        try:
            raw = json.loads(data)
            ns, process = raw.get("ns"), raw.get("process")
            return cls(str(raw["token"]), str(raw["host"]), int(raw["pid"]), float(raw["expires"]),
                       str(ns) if ns is not None else None,
                       str(process) if process is not None else None)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


class LockTimeout(TimeoutError):
    """The lock stayed held by a live owner for longer than the caller would wait."""


class FileLock:
    """`with FileLock(files, path, stale_s):` holds the lock for the block's duration."""

    def __init__(
        self,
        files: LockFiles,
        path: str,
        stale_s: float = 120.0,
        poll_s: float = 0.25,
        timeout_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if stale_s <= 0:
            raise ValueError(f"stale_s={stale_s!r}: must be > 0 seconds")
        self.files, self.path, self.stale_s = files, path, float(stale_s)
        self.poll_s, self.timeout_s, self.clock = poll_s, timeout_s, clock
        self.host = socket.gethostname()
        self.ns = namespace_id()
        self.token = secrets.token_hex(8)
        self.waited_s = 0.0  # how long acquiring took: the time another worker held it
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def _owner(self) -> LockOwner:
        return LockOwner(self.token, self.host, os.getpid(), self.clock() + self.stale_s,
                         self.ns, PROCESS_TOKEN)

    def _current(self) -> tuple[bytes | None, LockOwner | None]:
        data = self.files.read(self.path)
        return data, (LockOwner.decode(data) if data is not None else None)

    def _is_stale(self, owner: LockOwner) -> bool:
        if owner.expires < self.clock():
            return True  # no heartbeat for stale_s: crashed, killed or cut off, wherever it ran
        if owner.ns is None or owner.ns != self.ns or owner.host != self.host:
            return False  # not provably in this PID namespace: its pid means nothing here
        if owner.pid == os.getpid():
            # Our own pid: another thread of this process, or a dead process whose pid we reused.
            return owner.process is not None and owner.process != PROCESS_TOKEN
        return not pid_alive(owner.pid)

    def _break(self, stale: LockOwner) -> None:
        _, now = self._current()
        if now is not None and now.token == stale.token:
            log.warning("breaking stale lock %s (held by %s pid %d)", self.path, stale.host,
                        stale.pid)
            self.files.remove(self.path)

    def acquire(self) -> None:
        started = time.monotonic()
        delay = min(0.05, self.poll_s)
        garbled_since: float | None = None
        while True:
            if self.files.create(self.path, self._owner().encode()):
                break
            data, owner = self._current()
            if data is None:
                continue  # released between our create and read: try again at once
            if owner is None:
                # Not a lock this code wrote whole; if it stays unreadable, treat it as stale.
                garbled_since = garbled_since or time.monotonic()
                if time.monotonic() - garbled_since > self.stale_s:
                    self.files.remove(self.path)
                    continue
            elif self._is_stale(owner):
                self._break(owner)
                continue
            if self.timeout_s is not None and time.monotonic() - started > self.timeout_s:
                raise LockTimeout(f"{self.path} is still held by "
                                  f"{owner.host + ' pid ' + str(owner.pid) if owner else '?'} "
                                  f"after {self.timeout_s:g}s")
            time.sleep(delay)
            delay = min(delay * 2, self.poll_s)
        self.waited_s = time.monotonic() - started
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeat, name=f"lock-beat {self.path}",
                                      daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.stale_s / 4):
            try:
                _, owner = self._current()
                if owner is None or owner.token != self.token:
                    log.warning("lock %s was taken over while held; another worker may render "
                                "the same entry (the first one published is kept)", self.path)
                    return
                self.files.replace(self.path, self._owner().encode())
            except OSError as exc:  # storage hiccup: try again on the next beat
                log.warning("could not renew lock %s: %s", self.path, exc)

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
            self._beat = None
        try:
            _, owner = self._current()
            if owner is not None and owner.token == self.token:
                self.files.remove(self.path)
        except OSError as exc:  # it expires on its own
            log.warning("could not release lock %s: %s", self.path, exc)

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


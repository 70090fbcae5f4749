"""Atomic file and directory writes: temp sibling + fsync + rename.

A half-written file must never look like a finished one (a cache hit, a deliverable), so every
writer in stages/ goes through these helpers: the data is written to a hidden temp sibling in the
same directory (same filesystem, so the rename is atomic), flushed to disk, and only then renamed
onto the final name. On any exception the temp is removed and the final path is left untouched.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Callable, Iterator

__all__ = [
    "atomic_path",
    "atomic_dir",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "temp_sibling",
    "namespace_id",
    "writer_tag",
    "leftover_is_dead",
]

# A temp whose writer cannot be proven dead (it ran in another container or on another machine)
# is removed only once it is this old.
FOREIGN_LEFTOVER_AGE_S = 3600.0

_namespace: str | None = None


def namespace_id() -> str:
    """Who "pid N" means on this machine: the host name, the kernel's boot id and this process's
    PID namespace. Two containers that share a host name (host networking) but not a PID
    namespace get different ids, so neither reads the other's pid as its own."""
    global _namespace
    if _namespace is None:
        parts = [socket.gethostname()]
        for source in ("/proc/sys/kernel/random/boot_id",):
            try:
                parts.append(Path(source).read_text().strip())
            except OSError:
                parts.append("-")
        try:
            parts.append(os.readlink("/proc/self/ns/pid"))
        except OSError:
            parts.append("-")  # no /proc (macOS, Windows): no PID namespaces either
        _namespace = "/".join(parts)
    return _namespace


def writer_tag() -> str:
    """8 hex digits naming this process's PID namespace (namespace_id), carried in temp names."""
    return hashlib.sha256(namespace_id().encode()).hexdigest()[:8]


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


# `.<name>.tmp-<pid>-<tag8><random8>[suffix]` (older writers: `-<random8>` only) and
# `.<name>.deleting-<pid>[-<tag8>]`.
_TEMP_NAME = re.compile(r"\.tmp-(?P<pid>\d+)-(?P<hex>[0-9a-f]{8,})")
_DELETING_NAME = re.compile(r"\.deleting-(?P<pid>\d+)(?:-(?P<tag>[0-9a-f]{8}))?$")


def leftover_is_dead(path: Path, now: float | None = None,
                     foreign_age_s: float = FOREIGN_LEFTOVER_AGE_S,
                     alive: Callable[[int], bool] = _pid_alive) -> bool:
    """Whether the temp or half-deleted `path` (named by this module or by cache removal) was
    left by a writer that is gone. A writer in this PID namespace is gone when its process is;
    one elsewhere (another container, another machine) when it is older than `foreign_age_s`
    (its modification time, as `python -m flows.cache prune` always judged leftovers). Names
    of neither kind are never leftovers."""
    name = Path(path).name
    match = _TEMP_NAME.search(name)
    tag = None
    if match:
        hexpart = match["hex"]
        tag = hexpart[:8] if len(hexpart) >= 16 else None
    else:
        match = _DELETING_NAME.search(name)
        if not match:
            return False
        tag = match["tag"]
    try:
        if tag == writer_tag():
            return not alive(int(match["pid"]))
        now = time.time() if now is None else now
        return now - Path(path).lstat().st_mtime > foreign_age_s
    except OSError:
        return False


def temp_sibling(final: Path, *, keep_suffix: bool = True) -> Path:
    """A unique hidden temp name next to ``final``: ``.<name>.tmp-<pid>-<tag><random><suffix>``,
    where ``tag`` names this process's PID namespace (writer_tag), so a later run can tell a
    dead writer's leftover from a live writer's temp in another container (leftover_is_dead).

    The real suffix is kept at the end so tools that pick a format from the extension (ffmpeg's
    muxer, cv2.imwrite) still do the right thing.
    """
    final = Path(final)
    suffix = final.suffix if keep_suffix else ""
    return final.with_name(
        f".{final.name}.tmp-{os.getpid()}-{writer_tag()}{secrets.token_hex(4)}{suffix}")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """fsync a directory so a rename inside it is durable (best effort: not all FS allow it)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        pass


@contextlib.contextmanager
def atomic_path(final: Path | str) -> Iterator[Path]:
    """Yield a temp path next to ``final``; on success fsync it and ``os.replace`` it onto ``final``.

    The body must create the file at the yielded path (it does not exist yet). On exception
    (including KeyboardInterrupt) the temp is removed and ``final`` is untouched. Parent
    directories are created. An existing ``final`` is replaced (last writer wins).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(final)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"atomic_path: nothing was written to the temp file for {final}")
        _fsync_file(tmp)
        os.replace(tmp, final)
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(final.parent)


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the final path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
    return path


def atomic_write_text(path: Path | str, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8 by default); returns the final path."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: Path | str, obj: Any) -> Path:
    """Write ``obj`` as JSON (sorted keys, indent 2, trailing newline) atomically."""
    text = json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    return atomic_write_text(path, text)


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            p = Path(dirpath) / name
            if p.is_file() and not p.is_symlink():
                try:
                    _fsync_file(p)
                except OSError:
                    pass
        _fsync_dir(Path(dirpath))


def _move_aside(path: Path) -> None:
    """Take a broken published directory out of the way (renamed first, so nobody reads it
    half-deleted) and delete it."""
    doomed = path.with_name(f".{path.name}.deleting-{os.getpid()}-{writer_tag()}")
    try:
        os.rename(path, doomed)
    except FileNotFoundError:
        return  # someone else moved it already
    except OSError:
        doomed = path
    shutil.rmtree(doomed, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(final: Path | str,
               replace_if: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Yield a fresh temp sibling directory; on success rename it onto ``final``.

    If ``final`` already exists when the body finishes (another worker completed the same
    content-addressed entry first), ours is discarded and theirs is kept: directory entries are
    immutable once published. Except when ``replace_if(final)`` says the existing one is broken
    (a cache entry without its meta.json): then it is removed and ours takes its place. On
    exception the temp directory is removed. Parents are created.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(final, keep_suffix=False)
    tmp.mkdir()
    try:
        yield tmp
        _fsync_tree(tmp)
        if replace_if is not None and final.is_dir() and not final.is_symlink() \
                and replace_if(final):
            _move_aside(final)
        if final.exists() or final.is_symlink():
            _remove(tmp)  # someone else published first: keep theirs
        else:
            try:
                os.rename(tmp, final)
            except OSError as exc:
                # Lost the race between the check and the rename.
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR) and final.exists():
                    _remove(tmp)
                else:
                    raise
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(final.parent)

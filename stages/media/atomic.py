"""Atomic file and directory writes: temp sibling + fsync + rename.

A half-written file must never look like a finished one (a cache hit, a deliverable), so every
writer in stages/ goes through these helpers: the data is written to a hidden temp sibling in the
same directory (same filesystem, so the rename is atomic), flushed to disk, and only then renamed
onto the final name. On any exception the temp is removed and the final path is left untouched.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

# Temp names (who wrote them, whether that writer is gone) belong to the store, which cleans up
# after crashed writers; this module only asks for a fresh name.
from stages.store.temp_names import deleting_sibling, temp_sibling

__all__ = [
    "atomic_path",
    "atomic_dir",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "move_aside",
]


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


def move_aside(path: Path) -> None:
    """Take a broken (or unwanted) published directory out of the way (renamed first, so nobody
    reads it half-deleted) and delete it."""
    doomed = deleting_sibling(path)
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
            move_aside(final)
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

"""Temp-file names: the one place that writes them and reads them back.

Every unfinished write on disk is a hidden sibling of its final name, named so that a later run
can tell whose it is and whether that writer is gone:

- `.<name>.tmp-<pid>-<tag8><random8>[suffix]`: an atomic write in progress (stages.media.atomic),
  a cache entry's temp folder, a lock file's temp (older writers: `-<random8>` only);
- `.<name>.deleting-<pid>[-<tag8>]`: a published folder being removed (renamed first so nobody
  reads it half-deleted);
- a writer's scratch file beside its temp (`<temp name><extra suffix>`) keeps the temp's name in
  front, so it is judged (and cleaned up) like the temp itself.

`tag8` names the writer's PID namespace (writer_tag), because "pid 812" means nothing across
containers. The cache, the render folders and `python -m flows.cache` ask this module whether a
name is a leftover and whether its writer is gone; none of them parses names themselves.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import socket
import time
from pathlib import Path
from typing import Callable

from stages.store.liveness import pid_alive

__all__ = [
    "FOREIGN_LEFTOVER_AGE_S",
    "namespace_id",
    "writer_tag",
    "temp_sibling",
    "deleting_sibling",
    "scratch_beside",
    "is_temp_name",
    "is_leftover_name",
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


# -- writing names ------------------------------------------------------------------------------


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


def deleting_sibling(path: Path) -> Path:
    """The name a published folder is renamed to while it is deleted:
    ``.<name>.deleting-<pid>-<tag>``."""
    path = Path(path)
    return path.with_name(f".{path.name}.deleting-{os.getpid()}-{writer_tag()}")


def scratch_beside(temp: Path, suffix: str) -> Path:
    """A helper file of the writer of ``temp`` (ffmpeg's metadata input, say): ``temp``'s name
    plus ``suffix``, so a crash leaves a name that cleanup recognises as that writer's."""
    temp = Path(temp)
    return temp.with_name(temp.name + suffix)


# -- reading names ------------------------------------------------------------------------------

# The writer's pid and the hex after it (tag8 + random8; older writers: random8 only).
_TEMP_NAME = re.compile(r"\.tmp-(?P<pid>\d+)-(?P<hex>[0-9a-f]{8,})")
_DELETING_NAME = re.compile(r"\.deleting-(?P<pid>\d+)(?:-(?P<tag>[0-9a-f]{8}))?$")
# Whole-name shapes: an atomic temp file in a render folder, and any leftover in the cache.
_TEMP_FILE = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-[0-9a-f]+")
_LEFTOVER = re.compile(r"^\.[^/]*(\.tmp-\d+-[0-9a-f]+|\.deleting-\d+)")


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is an atomic write's temp (temp_sibling), not a finished file."""
    return _TEMP_FILE.match(name) is not None


def is_leftover_name(name: str) -> bool:
    """Whether ``name`` is an unfinished write: a temp (temp_sibling) or a folder being deleted
    (deleting_sibling). Whether its writer is gone is leftover_is_dead's question."""
    return _LEFTOVER.match(name) is not None


def leftover_is_dead(path: Path, now: float | None = None,
                     foreign_age_s: float = FOREIGN_LEFTOVER_AGE_S,
                     alive: Callable[[int], bool] = pid_alive) -> bool:
    """Whether the temp or half-deleted `path` (named by temp_sibling or deleting_sibling) was
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

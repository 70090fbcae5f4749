"""The last check between a valid plan and the first byte written: whether the disk can hold
the render. `check_disk_space` raises NotEnoughDiskSpace (exit 1: the input is fine, the machine
is not). The policies checked before it (images, output folder) are in flows/config/policies.py.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from stages.store.disk_estimate import estimate_bytes

if TYPE_CHECKING:
    from flows.pipeline.prepare import Prepared

# Kept free beyond the estimate: the OS, logs and other programs need room too.
RESERVE_BYTES = 256 * 1024 * 1024


class NotEnoughDiskSpace(RuntimeError):
    """The plan's estimate does not fit on the disk; nothing was written."""


@dataclass(frozen=True)
class DiskNeed:
    folder: Path
    needed: int
    free: int


def free_bytes(folder: Path) -> int:
    """Free bytes for unprivileged writes on the file system holding `folder` (or its nearest
    existing parent: the render folder may not exist yet). Tests replace this function."""
    path = Path(folder)
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def _device(folder: Path) -> int:
    path = Path(folder)
    while not path.exists() and path != path.parent:
        path = path.parent
    return os.stat(path).st_dev


def disk_needs(prepared: "Prepared", free: Callable[[Path], int] | None = None) -> list[DiskNeed]:
    """Bytes the render will write, per file system (the cache and the render folder may live
    on different disks), next to what is free there."""
    free = free or free_bytes
    estimate = estimate_bytes(prepared.plan, prepared.store)
    needs: dict[int, DiskNeed] = {}
    for folder, amount in ((Path(prepared.store.root), estimate.cache),
                           (prepared.out_dir, estimate.render_folder)):
        device = _device(folder)
        if device in needs:
            old = needs[device]
            needs[device] = DiskNeed(old.folder, old.needed + amount, old.free)
        else:
            needs[device] = DiskNeed(folder, amount, free(folder))
    return list(needs.values())


def _mb(count: int) -> str:
    return f"{count / 1e6:,.0f} MB" if count >= 1e6 else f"{count / 1e3:,.1f} kB"


def check_disk_space(prepared: "Prepared", free: Callable[[Path], int] | None = None) -> None:
    """Raise NotEnoughDiskSpace when the estimate (plus a reserve) exceeds the free space."""
    if not prepared.settings.disk_check:
        return
    short = [need for need in disk_needs(prepared, free)
             if need.needed + RESERVE_BYTES > need.free]
    if short:
        lines = [f"{need.folder}: this render needs about {_mb(need.needed)} (plus "
                 f"{_mb(RESERVE_BYTES)} kept free), but only {_mb(need.free)} is free"
                 for need in short]
        raise NotEnoughDiskSpace(
            "not enough disk space; nothing was written.\n  " + "\n  ".join(lines) + "\n"
            "Free some space (`python -m flows.cache prune --max-size 10GB` trims the cache), "
            "point cache_dir= / output_dir= at a bigger disk, or skip this check with "
            "disk_check=false.")

"""Checks between a valid plan and the first byte written: where images may come from, where the
render may write, and whether the disk can hold it.

`image_policy` and `render_folder` raise ConfigInvalid (exit 2, nothing written);
`check_disk_space` raises NotEnoughDiskSpace (exit 1: the input is fine, the machine is not).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from flows.settings import ConfigInvalid, RenderSettings
from stages.store.disk_estimate import estimate_bytes
from stages.storyboard.image_refs import ImagePolicy, check_address_text
from stages.store.output_paths import UnsafeOutputPath
from stages.store.output_paths import render_folder as _render_folder

if TYPE_CHECKING:
    from flows.prepare import Prepared

_IMAGE_KEYS = {"asset_roots", "allow_any_path", "remote", "remote_max_mb", "remote_timeout_s",
               "remote_allow"}
# Kept free beyond the estimate: the OS, logs and other programs need room too.
RESERVE_BYTES = 256 * 1024 * 1024


def image_policy(settings: RenderSettings) -> ImagePolicy:
    """conf/config.yaml `images:` -> ImagePolicy; relative asset roots resolve from the cwd."""
    raw = dict(settings.images or {})
    problems = [f"images.{key}: unknown key (allowed: {', '.join(sorted(_IMAGE_KEYS))})"
                for key in raw if key not in _IMAGE_KEYS]
    roots = raw.get("asset_roots") or []
    if isinstance(roots, str) or not isinstance(roots, list) or not all(
            isinstance(r, str) and r for r in roots):
        problems.append(f"images.asset_roots={roots!r}: give a list of folders, e.g. "
                        "images.asset_roots=[/data/assets]")
        roots = []
    flags = {}
    for key in ("allow_any_path", "remote"):
        value = raw.get(key, False)
        if not isinstance(value, bool):
            problems.append(f"images.{key}={value!r}: must be true or false")
        flags[key] = value is True
    limits = {}
    for key, default, high in (("remote_max_mb", 50, 4096), ("remote_timeout_s", 20, 3600)):
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= high:
            problems.append(f"images.{key}={value!r}: must be a number in (0, {high}]")
            value = default
        limits[key] = value
    allow = raw.get("remote_allow") or []
    if isinstance(allow, str) or not isinstance(allow, (list, tuple)) or not all(
            isinstance(a, str) and a for a in allow):
        problems.append(f"images.remote_allow={allow!r}: give a list of host names, addresses "
                        "or networks, e.g. images.remote_allow=[assets.lan,10.0.5.0/24]")
        allow = []
    for entry in allow:
        why = check_address_text(entry)
        if why:
            problems.append(f"images.remote_allow: {entry!r} is {why}")
    if problems:
        raise ConfigInvalid("\n".join(problems))
    return ImagePolicy(
        asset_roots=tuple(settings.path(r) for r in roots),
        allow_any_path=flags["allow_any_path"], remote=flags["remote"],
        remote_max_bytes=int(limits["remote_max_mb"] * 1024 * 1024),
        remote_timeout_s=float(limits["remote_timeout_s"]),
        remote_allow=tuple(str(a) for a in allow),
    )


def render_folder(output_root: Path, name: str, variant: str | None) -> Path:
    try:
        return _render_folder(output_root, name, variant)
    except UnsafeOutputPath as exc:
        raise ConfigInvalid(str(exc)) from None


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

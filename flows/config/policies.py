"""Policies on what a render may touch, checked before anything is written: where storyboard
images may come from (conf/config.yaml `images:`) and where the render may write.

Both raise ConfigInvalid (exit 2, nothing written).
"""

from __future__ import annotations

from pathlib import Path

from flows.config.settings import ConfigInvalid, RenderSettings
from stages.storyboard.image_refs import ImagePolicy, check_address_text
from stages.store.output_paths import UnsafeOutputPath
from stages.store.output_paths import render_folder as _render_folder

_IMAGE_KEYS = {"asset_roots", "allow_any_path", "remote", "remote_max_mb", "remote_timeout_s",
               "remote_allow"}


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

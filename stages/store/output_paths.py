"""Render folders that cannot escape the output root.

A render writes `<output root>/<storyboard name>[/<variant>]/...`. The storyboard name comes from
a file name, the variant from command-line overrides: neither may be `..`, contain a separator or
be absolute, and no folder below the output root may be a symlink (a checked-out `renders/ep01/
shots -> /etc` would otherwise make a render write wherever it points). Files themselves are
always replaced by an atomic rename, which replaces a symlink rather than writing through it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from stages.plan.keys import content_key
from stages.store.temp_names import is_temp_name, leftover_is_dead

# Letters, digits and . _ - = , + (multirun variants look like `engine=svd,fps=12`); starts with
# a letter or digit, so never "." or ".." or a hidden name.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=,+-]{0,199}$")

# Folders a render creates inside its render folder.
SUBFOLDERS = ("shots", "frames", "control")  # control: stages.control.publish


@dataclass(frozen=True)
class RenderFiles:
    """The names of one render's files in its render folder."""

    video: str
    contact_sheet: str
    manifest: str
    report: str


def subset_label(selected: Sequence[str] | None, all_ids: Sequence[str]) -> str | None:
    """The name suffix of a subset render (`shots=[b,d]` -> "shots-b+d"), or None when every shot
    of the storyboard is rendered. Long lists are shortened to a count and a hash."""
    if not selected or set(selected) >= set(all_ids):
        return None
    ordered = [i for i in all_ids if i in set(selected)] or list(selected)
    label = "shots-" + "+".join(ordered)
    if len(label) > 80:
        label = f"shots-{len(ordered)}-{content_key('subset', ordered)[:8]}"
    return label


def render_files(name: str, subset: str | None) -> RenderFiles:
    """`NAME.mp4`, `contact_sheet.png`, `manifest.json` and `report.html`; a subset render
    (`shots=[...]`) puts its label before each extension (`NAME.shots-b.mp4`,
    `manifest.shots-b.json`, ...), so it never replaces what the full render wrote."""
    tag = f".{subset}" if subset else ""
    return RenderFiles(video=f"{name}{tag}.mp4", contact_sheet=f"contact_sheet{tag}.png",
                       manifest=f"manifest{tag}.json", report=f"report{tag}.html")


class UnsafeOutputPath(ValueError):
    """A render folder name or location that would write outside the output root."""


def check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or ".." in name:
        raise UnsafeOutputPath(
            f"{what} {name!r} cannot name an output folder: use letters, digits, '.', '_', '-' "
            "(starting with a letter or digit, no '..', no '/')")
    return name


def _symlinks_below(root: Path, path: Path) -> Iterable[Path]:
    current = root
    for part in path.relative_to(root).parts:
        current = current / part
        if current.is_symlink():
            yield current


def render_folder(output_root: Path, name: str, variant: str | None = None,
                  subfolders: Iterable[str] = SUBFOLDERS) -> Path:
    """`output_root/name[/variant]`, checked (nothing is created): safe names, inside the root,
    and no symlinked folder on the way down or among the render's own subfolders."""
    root = Path(output_root)
    folder = root / check_name(name, "storyboard name")
    if variant:
        folder = folder / check_name(variant, "multirun variant")
    for path in [folder] + [folder / sub for sub in subfolders]:
        for link in _symlinks_below(root, path):
            raise UnsafeOutputPath(
                f"{link} is a symlink; a render writes only into real folders under {root}. "
                "Remove the link (or point output_dir= at the real location)")
    return folder


def remove_dead_temps(folder: Path, subfolders: Iterable[str] = SUBFOLDERS) -> list[Path]:
    """Delete the temp files a killed render left in its render folder (their writer's process
    is gone: stages.store.temp_names.leftover_is_dead, which never takes a live writer in another
    container for a dead one); a live writer's temps are left alone. Returns what was removed."""
    removed = []
    for where in [Path(folder)] + [Path(folder) / sub for sub in subfolders]:
        if not where.is_dir():
            continue
        for path in where.iterdir():
            if is_temp_name(path.name) and path.is_file() and not path.is_symlink() \
                    and leftover_is_dead(path):
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed

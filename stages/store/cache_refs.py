"""Which cache entries belong to which storyboard.

Cache entries are addressed by content, so nothing in an entry says which storyboard it serves.
After every render, `<cache>/refs/<name>[@<variant>].json` records the keys that render used and
the settings it ran with; `python -m flows.cache` groups entries by these records and, before
pruning, re-plans each kept storyboard with its recorded settings to know what it still needs.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from pathlib import Path
from typing import Any

from stages.plan.keys import deliverable_keys
from stages.media.atomic import atomic_write_json
from stages.plan.build import RenderPlan
from stages.control.job import control_keys
from stages.control.pose_clip import pose_keys

log = logging.getLogger(__name__)

REFS = "refs"
KINDS = ("segment", "shot", "episode", "deliverable", "control", "pose", "audio_analysis")


def needed_keys(plan: RenderPlan) -> dict[str, list[str]]:
    """Every cache entry a render of `plan` reads or writes, by kind."""
    return {
        "segment": [job.key for job in plan.segments()],
        "shot": [shot.key for shot in plan.included()],
        "episode": [plan.key],
        "deliverable": deliverable_keys(plan),
        # Extracted control videos (storyboard `control:`), by the source's bytes and settings.
        "control": control_keys(plan),
        # An animate shot's keypoints (pose.model), by the driving video's bytes and slice.
        "pose": pose_keys(plan),
        # The soundtrack's analysis (`audio.reactive`), by the audio's bytes.
        "audio_analysis": [plan.reactive.analysis.key] if plan.reactive is not None else [],
    }


def refs_file(cache_root: Path, name: str, variant: str | None = None) -> Path:
    return Path(cache_root) / REFS / (name + (f"@{variant}" if variant else "") + ".json")


def record_refs(cache_root: Path, plan: RenderPlan, settings: dict[str, Any],
                variant: str | None = None) -> Path | None:
    """Write the record; None (with a warning) when the cache cannot take it (read-only, full):
    it only groups entries for `python -m flows.cache`, the render itself is done."""
    try:
        return atomic_write_json(refs_file(cache_root, plan.name, variant), {
            "storyboard": plan.name,
            "file": str(plan.storyboard_path),
            "variant": variant,
            "settings": settings,
            "rendered": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "keys": needed_keys(plan),
        })
    except OSError as exc:
        log.warning("cannot record which cache entries %s uses in %s (%s)", plan.name,
                    cache_root, exc)
        return None


def load_refs(cache_root: Path) -> list[dict[str, Any]]:
    """Every readable record (a damaged one is skipped with a warning: it only groups entries)."""
    records = []
    for path in sorted((Path(cache_root) / REFS).glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(record.get("keys"), dict):
                raise ValueError("no keys")
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("ignoring %s (%s)", path, exc)
            continue
        record["_path"] = str(path)
        records.append(record)
    return records

"""Content keys: a hash of everything that determines an output's pixels, and nothing else.

Keys never contain timestamps or absolute paths, so the same storyboard on another machine or in
another folder finds the same cache entries.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

# Bump when the meaning of a key's inputs changes (new fields, different rounding).
KEY_SCHEMA = 1


def _canonical(value: Any) -> Any:
    if isinstance(value, float):
        # Rounding makes keys stable against float noise from arithmetic on camera paths.
        return round(value, 9)
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def content_key(kind: str, payload: dict[str, Any]) -> str:
    blob = json.dumps(
        {"kind": kind, "schema": KEY_SCHEMA, "payload": _canonical(payload)},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.lru_cache(maxsize=64)
def _sha_while(path: str, size: int, mtime_ns: int, inode: int) -> str:
    return file_sha256(Path(path))


def input_sha256(path: Path) -> str:
    """file_sha256 of an input file (a control or driving video), read once per process while
    it stays the same file (size, mtime, inode): a shot's clip is keyed at every segment, at
    publishing and in the dry run. Cache entries are verified with file_sha256 itself."""
    stat = os.stat(path)
    return _sha_while(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)


def deliverable_key(plan: Any, what: str, inner_key: str) -> str:
    """The key of an encoded deliverable (H.264/H.265 shot or episode video) of `inner_key`, for
    a RenderPlan `plan` (not imported: the plan's modules and post.chain import this module).

    The colour tags the writer stamps (video_io.DELIVERABLE_COLOR) are part of it: deliverables
    cached before they were tagged BT.709 throughout are re-encoded, not reused. The lossless
    intermediates' keys (`inner_key`) do not depend on them."""
    from stages.media.video_io import DELIVERABLE_COLOR

    return content_key("deliverable", {"what": what, "inner": inner_key,
                                       "output": plan.output.model_dump(), "fps": plan.output_fps,
                                       "color": DELIVERABLE_COLOR})


def deliverable_keys(plan: Any) -> list[str]:
    """Cache keys of the shot deliverables the plan's episode uses (for cache maintenance)."""
    return [deliverable_key(plan, "shot", shot.key) for shot in plan.included()]

"""A segment's generation inputs that are not frames: its seed and its engine params."""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

from stages.plan.profiles import Profile, resolve_key
from stages.storyboard.schema import GenerationKeys

# Generation keys that travel as engine params (the rest are files, handled on their own).
_PARAM_KEYS = tuple(k for k in GenerationKeys.model_fields if k != "loras")


def generation_params(base: dict[str, Any], holders: Sequence[Any],
                      levels: Sequence[Profile | None] = ()) -> dict[str, Any]:
    """Engine config params overlaid with the storyboard's keys and profiles by the precedence
    rule of stages.plan.profiles (holders: segment, shot, defaults; levels: the profile declared at
    each of those levels, then the storyboard's)."""
    params = dict(base)
    for key in _PARAM_KEYS:
        value = resolve_key(key, holders, levels)
        if value is not None:
            params[key] = value
    return params


def derive_seed(base: int, shot_id: str, index: int) -> int:
    digest = hashlib.sha256(f"{base}:{shot_id}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF

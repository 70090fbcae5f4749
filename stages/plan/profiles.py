"""Render profiles: one word for how shots render (`draft`, `final`, `low_vram`, `two_pass`).

A profile is defined per engine in its config (conf/engine/<name>.yaml, `profiles:`), because
what "draft" means depends on the model (a LightX2V / Lightning LoRA pair for Wan 2.2 A14B, one
LoRA for Wan 2.1), and is picked by name: `profile:` at the top of a storyboard, in `defaults:`
or on a shot, or `profile=NAME` on the command line.

    params      generation keys it sets (steps, cfg, cfg_2, flow_shift, sampler, boundary, ...)
    lora        a LoRA file it adds (e.g. a step-distilled LoRA), `strength` on the first expert
    lora_2      a second file for the low-noise expert of a Lightning pair (`strength_2`);
                without it, `lora` applies to both experts (`strength_2`, default `strength`)
    needs_lora  true: rendering with this profile needs `lora` set (draft without its distilled
                LoRA would render 4-step noise); the render stops before any work otherwise
    options     engine options (quantize, offload, ...): these change how the model loads, so a
                profile with options applies to the whole render only (top level or CLI)

Precedence, the documented rule: keys resolve innermost first (segment, shot, defaults, top);
at each level an explicit key wins over the profile declared at that level, which wins over
anything further out. `profile=NAME` on the command line replaces every profile the storyboard
declares (as `post=` replaces its chain), and explicit storyboard keys still win over it. A
profile's LoRAs are added to the storyboard's `loras`, not replaced by them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from engine.base import LoraRef

NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
KEYS = ("description", "params", "options", "lora", "lora_2", "strength", "strength_2",
        "needs_lora")


@dataclass(frozen=True)
class Profile:
    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    loras: tuple[LoraRef, ...] = ()
    # Config keys to set before this profile can render (e.g. engine.profiles.draft.lora).
    missing: tuple[str, ...] = ()
    description: str = ""


def unready(profile: Profile) -> list[str]:
    """What stops `profile` from rendering: a LoRA key to set, a LoRA file that is missing."""
    problems = [f"set {key}=/path/to/<step-distilled LoRA>.safetensors (e.g. a LightX2V or "
                f"Lightning LoRA for this model)" for key in profile.missing]
    problems += [f"LoRA file {lora.path} not found (set in engine.profiles.{profile.name})"
                 for lora in profile.loras if not Path(lora.path).is_file()]
    return problems


class ProfileConfigError(ValueError):
    """A bad `profiles:` entry in the engine config; the message names the key path."""


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not -4 <= value <= 4:
        raise ProfileConfigError(f"{where}={value!r}: expected a LoRA strength in -4..4")
    return float(value)


def parse_profile(name: str, data: Any, where: str) -> Profile:
    if not NAME.match(str(name)):
        raise ProfileConfigError(f"{where}: profile name {name!r} must match [a-z][a-z0-9_]*")
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ProfileConfigError(f"{where}={data!r}: expected a mapping with "
                                 f"{', '.join(KEYS)}")
    unknown = [k for k in data if k not in KEYS]
    if unknown:
        raise ProfileConfigError(f"{where}.{unknown[0]}: unknown profile key (keys: "
                                 f"{', '.join(KEYS)})")
    for key in ("params", "options"):
        if data.get(key) is not None and not isinstance(data[key], Mapping):
            raise ProfileConfigError(f"{where}.{key}={data[key]!r}: expected a mapping")
    strength = _number(f"{where}.strength", data.get("strength", 1.0))
    second = data.get("strength_2")
    strength_2 = strength if second is None else _number(f"{where}.strength_2", second)
    first, pair = data.get("lora"), data.get("lora_2")
    loras: list[LoraRef] = []
    if first and pair:  # a Lightning pair: each file on its own expert
        loras = [LoraRef(str(Path(str(first)).expanduser()), strength, 0.0),
                 LoraRef(str(Path(str(pair)).expanduser()), 0.0, strength_2)]
    elif first:
        loras = [LoraRef(str(Path(str(first)).expanduser()), strength, strength_2)]
    missing = (f"{where}.lora",) if data.get("needs_lora") and not first else ()
    return Profile(name=str(name), params=dict(data.get("params") or {}),
                   options=dict(data.get("options") or {}), loras=tuple(loras),
                   missing=missing, description=str(data.get("description") or ""))


def profiles_from_config(engine_config: Mapping[str, Any]) -> dict[str, Profile]:
    """The engine config's `profiles:` as Profile objects (ProfileConfigError when malformed)."""
    raw = engine_config.get("profiles") or {}
    if not isinstance(raw, Mapping):
        raise ProfileConfigError(f"engine.profiles={raw!r}: expected a mapping of name to "
                                 f"profile")
    return {str(n): parse_profile(str(n), d, f"engine.profiles.{n}") for n, d in raw.items()}


@dataclass(frozen=True)
class ProfileChoice:
    """The profiles a render may use and the command line's choice."""

    profiles: Mapping[str, Profile] = field(default_factory=dict)
    override: str | None = None  # profile=NAME on the command line

    def get(self, name: str | None) -> Profile | None:
        return None if name is None else self.profiles.get(name)

    def levels(self, shot: Any, defaults: Any, top: str | None) -> list[Profile | None]:
        """The profile declared at each level of a segment: (segment, shot, defaults, top)."""
        if self.override is not None:
            return [None, None, None, self.get(self.override)]
        return [None, self.get(getattr(shot, "profile", None)),
                self.get(getattr(defaults, "profile", None)), self.get(top)]

    def top(self, storyboard_profile: str | None) -> Profile | None:
        """The render-wide profile (its engine options apply at load)."""
        return self.get(self.override if self.override is not None else storyboard_profile)


def resolve_key(key: str, holders: Sequence[Any], levels: Sequence[Profile | None]) -> Any:
    """`key` by the precedence rule: per level (innermost first) the explicit value, then the
    profile declared at that level; None when nothing sets it."""
    for index in range(max(len(holders), len(levels))):
        holder = holders[index] if index < len(holders) else None
        value = getattr(holder, key, None) if holder is not None else None
        if value is not None:
            return value
        profile = levels[index] if index < len(levels) else None
        if profile is not None and profile.params.get(key) is not None:
            return profile.params[key]
    return None


def effective(levels: Sequence[Profile | None]) -> Profile | None:
    """The innermost profile declared for a segment (whose LoRAs it gets)."""
    return next((p for p in levels if p is not None), None)

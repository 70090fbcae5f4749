"""Checks of the cast (`cast:`, shots' `cast: [...]`, `{name}` placeholders) and of generated
keyframes (`image: {generate: ...}`) against the registry's engines (README "Cast and keyframes").

Every shot is read through the resolver, so the checks see the cast and images the planner will.
"""

from __future__ import annotations

from typing import Any, Iterator

from engine.base import EngineSpec
from engine.registry import available_engines, engine_spec, engines_where
from engine.suggest import did_you_mean
from stages.plan.animate import is_animate
from stages.storyboard.cast import placeholders
from stages.storyboard.problems import Problem
from stages.storyboard.resolve import ResolvedShot, keyframe_engine, resolve_shot
from stages.storyboard.schema import Storyboard, image_generated
from stages.storyboard.yaml_source import KeyPath


def _reference_engines() -> str:
    return ", ".join(engines_where(lambda s: s.max_references > 0)) or "none registered"


def _image_engines() -> str:
    return ", ".join(engines_where(lambda s: s.makes_images)) or "none registered"


def _texts(rs: ResolvedShot, base: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    """Every text of the shot that `{name}` expands in, with the key path it was written at."""
    shot, defaults = rs.shot, rs.defaults
    for key in ("prompt", "negative"):
        if getattr(shot, key) is not None:
            yield base + (key,), getattr(shot, key)
        elif defaults is not None and getattr(defaults, key) is not None:
            yield ("defaults", key), getattr(defaults, key)
    for i, seg in enumerate(shot.segments or []):
        for key in ("prompt", "negative"):
            if getattr(seg, key) is not None:
                yield base + ("segments", i, key), getattr(seg, key)
    for at, text in (shot.prompts or {}).items():
        yield base + ("prompts", f"{at:g}s"), text
    transition = rs.transition
    if transition is not None and transition.prompt:
        yield rs.where("transition", base) + ("prompt",), transition.prompt
    for key in ("image", "end_image"):
        block = image_generated(getattr(rs, key))
        if block is not None:
            where = rs.where(key, base)
            yield where + ("generate",), block.generate
            if block.negative:
                yield where + ("negative",), block.negative


class CastChecks:
    """Runs on a `Checker` (stages.storyboard.checks.shot) whose problems and warnings it adds to."""

    def __init__(self, checker: Any, model: Storyboard, keyframes_engine: str | None):
        self.c, self.model, self.configured = checker, model, keyframes_engine
        self.cast = model.cast or {}
        self._said: set[tuple[KeyPath, str]] = set()

    def add(self, path: KeyPath, message: str) -> None:
        # A value in `defaults:` is seen once per shot; report it once.
        if (path, message) not in self._said:
            self._said.add((path, message))
            self.c.add(path, message)

    def run(self) -> None:
        for name, member in self.cast.items():
            for i, ref in enumerate(member.images):
                self.c.image(("cast", name, "images", i), ref)
        if self.configured is not None:
            self._known_image_engine(None, self.configured)
        used: set[str] = set()
        for i, shot in enumerate(self.model.shots):
            rs = resolve_shot(shot, self.model.defaults)
            base: KeyPath = ("shots", i)
            used |= set(self._members(rs, base))
            self._placeholders(rs, base)
            self._keyframes(rs, base)
        for name in self.cast:
            if name not in used:
                self.c.warnings.append(f"cast member {name!r} is listed by no shot; add it to a "
                                       f"shot's `cast:` or remove it")

    def _members(self, rs: ResolvedShot, base: KeyPath) -> list[str]:
        """The shot's known members; unknown names are errors with a suggestion."""
        where = rs.where("cast", base)
        known = []
        for j, name in enumerate(rs.cast):
            if name in self.cast:
                known.append(name)
                continue
            hint = did_you_mean(name, self.cast)
            members = ", ".join(self.cast) or "none: add a top-level `cast:` section"
            self.add(where + (j,), f"shot {rs.shot.id}: unknown cast member {name!r}{hint} "
                                   f"(cast: {members})")
        references = sum(len(self.cast[name].images) for name in known)
        # An animate shot without an image animates its first member's first reference.
        if references and not (is_animate(self.c.engine, rs) and not rs.image):
            self._references(rs.shot.id, where, references, self.c.engine, "render")
        return known

    def _references(self, shot_id: str, where: KeyPath, count: int, spec: EngineSpec,
                    role: str) -> None:
        if spec.max_references <= 0:
            self.c.warnings.append(
                f"shot {shot_id}: {role} engine {spec.name!r} cannot use cast reference images "
                f"(engines that can: {_reference_engines()}); the references are ignored")
        elif count > spec.max_references:
            self.add(where, f"shot {shot_id}: its cast has {count} reference images, more than "
                            f"{role} engine {spec.name!r} takes ({spec.max_references}); list "
                            f"fewer members or give them fewer images")

    def _placeholders(self, rs: ResolvedShot, base: KeyPath) -> None:
        if self.model.cast is None:
            return  # no cast: nothing expands, braces are plain text
        listed = set(rs.cast)
        for path, text in _texts(rs, base):
            for name in placeholders(text):
                if name in listed:
                    continue
                if name in self.cast:
                    self.add(path, f"shot {rs.shot.id}: {{{name}}} names cast member {name!r}, "
                                   f"which the shot does not list; add it to the shot's "
                                   f"`cast: [{', '.join([*rs.cast, name])}]`")
                else:
                    hint = did_you_mean(name, self.cast)
                    self.add(path, f"shot {rs.shot.id}: {{{name}}} is no cast member{hint} "
                                   f"(cast: {', '.join(self.cast)}); write {{{{{name}}}}} for "
                                   f"literal braces")

    def _known_image_engine(self, path: KeyPath | None, name: str) -> EngineSpec | None:
        """The spec of image engine `name`, or None after reporting why it cannot be one."""
        if name not in available_engines():
            problem = (f"unknown engine {name!r}{did_you_mean(name, available_engines())} "
                       f"(image engines: {_image_engines()})")
        else:
            spec = engine_spec(name)
            if spec.makes_images:
                return spec
            problem = (f"engine {name!r} makes no images (modes: {', '.join(sorted(spec.modes))}"
                       f"); use an image engine: {_image_engines()}")
        if path is None:  # the config's keyframes.engine: blame the config, once
            if ("config", problem) not in self._said:
                self._said.add(("config", problem))
                self.c.problems.append(Problem("config", "keyframes.engine", problem))
        else:
            self.add(path, problem)
        return None

    def _keyframes(self, rs: ResolvedShot, base: KeyPath) -> None:
        for key in ("image", "end_image"):
            block = image_generated(getattr(rs, key))
            if block is None or (key == "image" and rs.chained):
                continue  # a chained shot's start is the previous shot's frame (checked there)
            where = rs.where(key, base)
            name = keyframe_engine(block, self.configured, self.c.engine)
            if name is None:
                self.add(where + ("generate",),
                         f"shot {rs.shot.id}: no engine to generate this keyframe: engine "
                         f"{self.c.engine.name!r} makes no images; set `engine:` in the block "
                         f"or keyframes.engine=NAME in the config (image engines: "
                         f"{_image_engines()})")
                continue
            spec = self._known_image_engine(where + ("engine",) if block.engine else None, name)
            references = sum(len(self.cast[n].images) for n in rs.cast if n in self.cast)
            if spec is not None and references:
                self._references(rs.shot.id, where, references, spec, "keyframe")

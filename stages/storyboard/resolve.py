"""The resolver: what a shot and each of its segments mean once `defaults:` are applied.

The storyboard's one inheritance rule lives here: a value set on a segment beats the shot's,
which beats `defaults:`. Validation checks the resolved values (and reports a problem where the
value was written, via `ResolvedShot.where`); the planner turns the same resolved values into
segment jobs. A new shot key that reaches the engine is added to the schema and here, and both
see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.base import EngineSpec
from stages.storyboard.schema import Camera, Chain, Lora, Segment, Shot, ShotDefaults, Transition
from stages.storyboard.schema.control import Control
from stages.storyboard.yaml_source import KeyPath


def inherited(name: str, *holders: Any) -> Any:
    """The first non-None `name` among segment, shot and defaults."""
    for holder in holders:
        if holder is not None and getattr(holder, name, None) is not None:
            return getattr(holder, name)
    return None


def _length_holders(seg: Segment | None, shot: Shot, defaults: ShotDefaults | None):
    """Who may give a piece its length: a shot with segments has no length of its own."""
    for holder in (seg, shot, defaults):
        if holder is None or (holder is shot and seg is not None and shot.segments):
            continue
        yield holder


def segment_seconds(
    seg: Segment | None, shot: Shot, defaults: ShotDefaults | None, fps: int
) -> float | None:
    """A segment's length in seconds as written (`frames:` counted at `fps`)."""
    for holder in _length_holders(seg, shot, defaults):
        if holder.frames is not None:
            return holder.frames / fps
        if holder.duration is not None:
            return holder.duration
    return None


def explicit_frames(seg: Segment | None, shot: Shot, defaults: ShotDefaults | None) -> int | None:
    """`frames:` where the length is given as frames, by the same holder that segment_seconds
    takes the length from (a shot's duration beats a frames default, and so on)."""
    for holder in _length_holders(seg, shot, defaults):
        if holder.frames is not None:
            return holder.frames
        if holder.duration is not None:
            return None
    return None


def shot_seconds(shot: Shot, defaults: ShotDefaults | None, fps: int) -> float | None:
    """The shot's length in seconds as written (before snapping to the engine's frame rule)."""
    if shot.segments:
        total = 0.0
        for seg in shot.segments:
            seconds = segment_seconds(seg, shot, defaults, fps)
            if seconds is None:
                return None
            total += seconds
        return total
    return segment_seconds(None, shot, defaults, fps)


@dataclass(frozen=True)
class ResolvedSegment:
    """One storyboard segment (or a shot without segments) with the shot and defaults applied.
    `seg` is None for a shot without `segments:`."""

    shot: Shot
    seg: Segment | None
    defaults: ShotDefaults | None

    @property
    def holders(self) -> tuple[Any, Any, Any]:
        """Innermost first: the order every per-segment key is looked up in."""
        return (self.seg, self.shot, self.defaults)

    @property
    def prompt(self) -> str | None:
        return inherited("prompt", *self.holders)

    @property
    def negative(self) -> str | None:
        return inherited("negative", *self.holders)

    @property
    def loras(self) -> list[Lora] | None:
        return inherited("loras", *self.holders)

    @property
    def seed(self) -> int | None:
        """The segment's own seed; a shot's seed is a base the planner offsets per piece."""
        return self.seg.seed if self.seg is not None else None

    @property
    def end_image(self) -> str | None:
        """The segment's own end image; the shot's belongs to its last piece."""
        return self.seg.end_image if self.seg is not None else None

    @property
    def scheduled(self) -> bool:
        """Whether a `prompts:` schedule may choose this segment's prompt (it has none)."""
        return self.seg is None or self.seg.prompt is None

    def seconds(self, fps: int) -> float | None:
        return segment_seconds(self.seg, self.shot, self.defaults, fps)

    def frames(self) -> int | None:
        return explicit_frames(self.seg, self.shot, self.defaults)


@dataclass(frozen=True)
class ResolvedShot:
    """A shot with `defaults:` applied to the keys a shot inherits as a whole."""

    shot: Shot
    defaults: ShotDefaults | None

    def _get(self, name: str) -> Any:
        return inherited(name, self.shot, self.defaults)

    @property
    def camera(self) -> Camera | None:
        return self._get("camera")

    @property
    def chain(self) -> Chain | None:
        """As written; None when neither the shot nor defaults set one (last-frame chaining)."""
        return self._get("chain")

    @property
    def image(self) -> str | None:
        return self._get("image")

    @property
    def end_image(self) -> str | None:
        return self._get("end_image")

    @property
    def transition(self) -> Transition | None:
        return self._get("transition")

    @property
    def source_video(self) -> str | None:
        return self._get("source_video")

    @property
    def driving_video(self) -> str | None:
        return self._get("driving_video")

    @property
    def control(self) -> Control | None:
        """The shot's control video settings (the shot's `control:`, else defaults')."""
        return self._get("control")

    @property
    def cast(self) -> tuple[str, ...]:
        """The cast members the shot lists (its own `cast:`, else `defaults:`'), in order."""
        return tuple(self._get("cast") or ())

    @property
    def chained(self) -> bool:
        return self.shot.start == "chain"

    def where(self, name: str, base: KeyPath) -> KeyPath:
        """The key path the value of `name` was written at: on the shot (`base`) or defaults."""
        return base + (name,) if getattr(self.shot, name) is not None else ("defaults", name)

    def segments(self) -> list[ResolvedSegment]:
        """One per storyboard segment; one for the whole shot when it has no `segments:`."""
        return [ResolvedSegment(self.shot, seg, self.defaults)
                for seg in (self.shot.segments or [None])]

    def seconds(self, fps: int) -> float | None:
        return shot_seconds(self.shot, self.defaults, fps)


def resolve_shot(shot: Shot, defaults: ShotDefaults | None) -> ResolvedShot:
    return ResolvedShot(shot, defaults)


def keyframe_engine(block: Any, configured: str | None, render: EngineSpec) -> str | None:
    """The engine that generates a keyframe (`image: {generate: ...}`), by the documented rule:
    the block's `engine:`, else the config's `keyframes.engine`, else the render engine when it
    makes images; None when none applies (validation names the fix)."""
    if getattr(block, "engine", None):
        return block.engine
    if configured:
        return configured
    return render.name if render.makes_images else None

"""The storyboard's `control:` key: a video whose structure (depth, edges, grey, motion, pose)
guides generation, e.g. `control: {video: clips/dance.mp4, kind: depth, strength: 0.8}`.

Only the values are checked here; whether the engine takes a control video, the file itself and
its length are checked by stages.control.checks, and the frames are made by stages.control.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from engine.suggest import did_you_mean
from stages.storyboard.schema.types import ImagePath, TimePoint, _Model

# What a control video can be turned into (stages.control.extract); one per kind of guidance.
CONTROL_KINDS = ("depth", "canny", "gray", "flow", "pose")
ControlKind = Literal["depth", "canny", "gray", "flow", "pose"]


class Control(_Model):
    """A control video: `{video: clips/dance.mp4, kind: depth, strength: 0.8, start: 2s}`. Each
    frame is turned into `kind` (depth map, edges, grey, optical flow, pose) and guides the
    engine (wan_vace: its control video, strength = conditioning scale)."""

    video: ImagePath
    """The control clip (.mp4, .mkv, .mov, .webm, .avi), relative to the storyboard."""
    kind: ControlKind
    """What guides generation: depth (a depth model, depth.model), canny (edges), gray,
    flow (optical flow colour wheel) or pose (needs a pose model; see README)."""
    strength: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    """How strongly the control guides generation, 0-1 (wan_vace's conditioning scale)."""
    start: TimePoint = 0.0
    """Where in the control clip the shot's first frame is: '2s', '500ms' or seconds."""

    @field_validator("kind", mode="before")
    @classmethod
    def _known_kind(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in CONTROL_KINDS:
            raise ValueError(f"unknown control kind {value!r}{did_you_mean(value, CONTROL_KINDS)}"
                             f" (kinds: {', '.join(CONTROL_KINDS)})")
        return value

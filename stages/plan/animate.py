"""Animate shots (a character performing the shot's `driving_video`): what they start from.

The character reference of an animate shot is its `image` when given, else the first reference
image of its first cast member; never a decoded frame. So `start: chain` on an animate shot
takes no pixels from the shot before it: the plan treats the shot as independent (no shared
first frame, no upstream key) and the chain only says where it sits in the edit. Starting an
animate shot from the previous shot's last frame would re-anchor the character on a generated
frame, and identity would drift from shot to shot.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path
from typing import Any

from stages.storyboard.resolve import ResolvedShot


def is_animate(engine: Any, rs: ResolvedShot) -> bool:
    """The shot animates a character on `engine` (an EngineSpec): it has a driving video the
    engine honours, and the engine's mode is animate."""
    return bool(rs.driving_video) and "driving_video" in engine.honours \
        and "animate" in engine.modes


def planned_shot(engine: Any, rs: ResolvedShot) -> ResolvedShot:
    """`rs` as the planner sees it: an animate shot never chains (see the module doc)."""
    if not (rs.chained and is_animate(engine, rs)):
        return rs
    return replace(rs, shot=rs.shot.model_copy(update={"start": None}))


@functools.lru_cache(maxsize=8)
def _pose_identity(models: Any) -> tuple:
    from engine.pose.estimate import pose_model_identity

    # Hashable, like the job it goes in: the detector's identity is a dict of its own.
    return tuple(sorted((name, tuple(sorted(value.items())) if isinstance(value, dict) else value)
                        for name, value in pose_model_identity(models).items()))


def animate_pose(vs: Any, engine: Any, rs: ResolvedShot) -> tuple[Any, Any]:
    """(the key material, engine.pose.estimate.PoseModels) of the pose model (and detector)
    that read an animate shot's driving video (`pose.model`, `pose.detector`); (None, None)
    for other shots, or without a pose model (the driving video is then the pose video as
    given)."""
    from engine.pose.estimate import PoseModels

    models = PoseModels.of(getattr(vs, "pose_model", None), getattr(vs, "pose_detector", None))
    if models is None or not is_animate(engine, rs):
        return None, None
    return _pose_identity(models), models


def pose_record(pose: Any) -> dict[str, Any]:
    """A planned pose identity (animate_pose's key material) as the manifest shows it."""
    return {name: dict(value) if isinstance(value, tuple) else value for name, value in pose}


def cast_reference(vs: Any, rs: ResolvedShot) -> Path | None:
    """The first reference image of the shot's first cast member (`vs`: the
    ValidatedStoryboard), or None when the shot lists no member of the cast."""
    cast = vs.model.cast or {}
    names = [name for name in rs.cast if name in cast]
    if not names or not cast[names[0]].images:
        return None
    return vs.image_path(cast[names[0]].images[0])

"""The planner's side of control videos: a segment's ControlJob (stages.control.job).

Only shots with `control:` on an engine that takes it get one; every other job keeps
`control=None`, which the key leaves out, so storyboards without control keep their keys.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from stages.control.job import ControlJob


@functools.lru_cache(maxsize=8)
def _identity(kind: str, model: Any) -> Any:
    from engine.depth.estimate import depth_model_identity
    from engine.pose.estimate import pose_model_identity

    return (depth_model_identity if kind == "depth" else pose_model_identity)(model)


def control_job(vs: Any, rs: Any, cursor: int, shot_frames: int) -> ControlJob | None:
    """The control of a segment whose frame 0 is shot frame `cursor`, in a shot of
    `shot_frames` frames; `vs`: the ValidatedStoryboard, `rs`: the ResolvedShot."""
    control = rs.control
    if control is None or not vs.engine.control:
        return None
    model = kind_model(vs, control.kind)
    return ControlJob(
        video=vs.image_path(control.video), kind=control.kind, strength=control.strength,
        start=control.start, fps=vs.fps, width=vs.width, height=vs.height,
        shot_frames=shot_frames, offset=cursor,
        model=_identity(control.kind, model) if model is not None else None)


def kind_model(vs: Any, kind: str) -> Any:
    """What control kind `kind` extracts with, as validation saw it: the depth model's folder
    (`depth.model`), the pose model and detector (engine.pose.estimate.PoseModels, from
    `pose.model` and `pose.detector`); None for kinds without a model."""
    from engine.pose.estimate import PoseModels

    if kind == "depth":
        folder = getattr(vs, "depth_model", None)
        return Path(folder) if folder else None
    if kind == "pose":
        return PoseModels.of(getattr(vs, "pose_model", None), getattr(vs, "pose_detector", None))
    return None


def control_model(vs: Any, job: ControlJob | None) -> Any:
    """The weights a segment's control extraction loads (depth, pose), or None."""
    return kind_model(vs, job.kind) if job is not None else None

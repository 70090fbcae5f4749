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
def _depth_identity(model: str) -> Any:
    from engine.depth.estimate import depth_model_identity

    return depth_model_identity(model)


def control_job(vs: Any, rs: Any, cursor: int, shot_frames: int) -> ControlJob | None:
    """The control of a segment whose frame 0 is shot frame `cursor`, in a shot of
    `shot_frames` frames; `vs`: the ValidatedStoryboard, `rs`: the ResolvedShot."""
    control = rs.control
    if control is None or not vs.engine.control:
        return None
    model = depth_model(vs) if control.kind == "depth" else None
    return ControlJob(
        video=vs.image_path(control.video), kind=control.kind, strength=control.strength,
        start=control.start, fps=vs.fps, width=vs.width, height=vs.height,
        shot_frames=shot_frames, offset=cursor,
        model=_depth_identity(str(model)) if model is not None else None)


def depth_model(vs: Any) -> Path | None:
    """The configured depth model's folder (`depth.model`), as validation saw it."""
    model = getattr(vs, "depth_model", None)
    return Path(model) if model else None


def control_model(vs: Any, job: ControlJob | None) -> Path | None:
    """The weights a segment's control extraction loads (depth), or None."""
    return depth_model(vs) if job is not None and job.kind == "depth" else None

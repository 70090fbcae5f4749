"""The planner's side of a shot's depth (storyboard `depth:`), for 2.5D camera moves.

A shot with `depth:` gets a DepthJob in each of its segments: the depth map file (keyed by its
bytes) or, for `depth: estimate`, the image the model estimates from (bytes) and the model's
identity. Shots without `depth:` keep `depth=None`, which the key leaves out, so storyboards
that use no depth keep their keys. The model's folder is a local path: the job carries it
unkeyed (SegmentJob.depth_model).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.storyboard.schema import image_file
from stages.storyboard.schema.depth import depth_estimated, depth_file

# Bump when the depth a job hands the engine changes for the same inputs (fitting, scaling).
DEPTH_REVISION = 1


@dataclass(frozen=True)
class DepthJob:
    file: Path | None = None  # a depth map file, confined by validation; keyed by its bytes
    image: Path | None = None  # `estimate`: the shot's image the model looks at (bytes)
    model: Any = None  # `estimate`: the model's identity (engine.depth.estimate)
    revision: int = DEPTH_REVISION


@functools.lru_cache(maxsize=8)
def _identity(model: str) -> Any:
    from engine.depth.estimate import depth_model_identity

    return tuple(sorted(depth_model_identity(model).items()))


def depth_job(vs: Any, rs: Any) -> DepthJob | None:
    """The depth of a shot's segments; `vs`: the ValidatedStoryboard, `rs`: the ResolvedShot."""
    value = rs.shot.depth
    if value is None:
        return None
    if depth_estimated(value):
        return DepthJob(image=vs.image_path(image_file(rs.image)),
                        model=_identity(str(vs.depth_model)))
    return DepthJob(file=vs.image_path(depth_file(value)))


def depth_model_folder(vs: Any, job: DepthJob | None) -> Path | None:
    """The model folder a segment's depth estimation loads, or None (a file, or no depth)."""
    if job is None or job.model is None:
        return None
    return Path(vs.depth_model)

"""A segment's depth map at render time: read from the shot's depth file, or estimated from the
shot's image by the local depth model, fitted to the frame (GenerationRequest.depth).

Files are re-checked with `unchanged()` just before they are opened, like images (a file
swapped for a symlink since validation is refused). An estimate is made once per image, model
and size in a process, not once per segment.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from engine.depth.maps import load_depth_map
from engine.images import load_rgb
from stages.plan.depth import DepthJob
from stages.storyboard.image_refs import unchanged


@functools.lru_cache(maxsize=4)
def _estimated(image: Path, model: Path, width: int, height: int) -> np.ndarray:
    from engine.depth.estimate import estimate_depth

    rgb = load_rgb(unchanged(image, "image"), width, height)
    # CPU: one still per shot, and the same numbers on every worker whatever its GPU.
    return estimate_depth(rgb[None], model, device="cpu")[0]


def load_depth(job: DepthJob | None, model: Path | None, width: int, height: int
               ) -> np.ndarray | None:
    """float32 (height, width) 0..1 (1 = nearest) for the segment, or None without depth."""
    if job is None:
        return None
    if job.file is not None:
        return load_depth_map(unchanged(job.file, "depth map"), width, height)
    if model is None:
        raise ValueError("depth: estimate, but no depth model folder was planned; set "
                         "depth.model in conf/config.yaml")
    return _estimated(Path(job.image), Path(model), width, height).copy()

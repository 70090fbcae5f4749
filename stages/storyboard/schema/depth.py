"""A shot's depth map (`depth: assets/cliff_depth.png` or `depth: estimate`), for 2.5D camera
moves. stages.storyboard.schema uses it in shots."""

from __future__ import annotations

from typing import Any

from stages.storyboard.schema.types import ImagePath

# `depth: estimate`: a local depth model (conf `depth.model`) estimates it from the shot's image.
DEPTH_ESTIMATE = "estimate"

DepthRef = ImagePath


def depth_file(value: Any) -> str | None:
    """The depth map's path as written, or None for no depth or `estimate`."""
    if value is None or value == DEPTH_ESTIMATE:
        return None
    return str(value)


def depth_estimated(value: Any) -> bool:
    return value == DEPTH_ESTIMATE

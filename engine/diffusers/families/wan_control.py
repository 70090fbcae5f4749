"""The control video of a Wan VACE request (storyboard `control:`), checked and as frames.

Beside wan.py so that module stays about pipelines; VACE takes the control frames as the
`video` of the frames it generates (mask 1) and `control_strength` as its conditioning scale.
"""

from __future__ import annotations

import numpy as np

from ...base import EngineError, GenerationRequest


def control_frames(request: GenerationRequest) -> list[np.ndarray] | None:
    """One control frame per output frame, or None when the request has no control video."""
    control = request.control_video
    if control is None:
        return None
    shape = (request.num_frames, request.height, request.width, 3)
    if np.shape(control) != shape or np.asarray(control).dtype != np.uint8:
        raise EngineError(
            f"segment {request.shot_id}_{request.segment_index}: control_video has "
            f"{getattr(control, 'dtype', type(control).__name__)} {tuple(np.shape(control))}; "
            f"wan_vace needs uint8 {shape} (one frame per output frame at the request's size)")
    return list(np.asarray(control))

"""The preview engine's use of a control video (storyboard `control:`): each frame is blended
with its control frame by the control's strength, before the caption, the end image and the cast
inset, so the animatic shows what guided the shot and tests can measure it. Same request, same
pixels; requests without a control video are untouched (their keys and pixels stay)."""

from __future__ import annotations

import cv2
import numpy as np

from ..base import EngineError, GenerationRequest


def control_layer(request: GenerationRequest, frames: int, width: int, height: int
                  ) -> tuple[np.ndarray | None, float]:
    """The request's control frames (checked) and strength, or (None, 0) without control."""
    control = request.control_video
    if control is None:
        return None, 0.0
    strength = request.control_strength
    if isinstance(strength, bool) or not isinstance(strength, (int, float, np.floating)) \
            or not 0.0 <= float(strength) <= 1.0:
        raise EngineError(f"control_strength={strength!r} must be a number from 0 to 1")
    shape = (frames, height, width, 3)
    if not isinstance(control, np.ndarray) or control.dtype != np.uint8 or control.shape != shape:
        raise EngineError(
            f"control_video has {getattr(control, 'dtype', type(control).__name__)} "
            f"{getattr(control, 'shape', '')}; expected uint8 {shape}, one frame per output frame")
    return control, float(strength)


def blend_control(frame: np.ndarray, control: np.ndarray, strength: float) -> None:
    """`frame` <- (1 - strength) * frame + strength * control, in place."""
    if strength <= 0.0:
        return
    cv2.addWeighted(frame, 1.0 - strength, control, strength, 0.0, dst=frame)

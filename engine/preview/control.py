"""The preview engine's use of a control video (storyboard `control:`): each frame is blended
with its control frame by the control's strength, before the caption, the end image and the cast
inset, so the animatic shows what guided the shot and tests can measure it. Same request, same
pixels; requests without a control video are untouched (their keys and pixels stay)."""

from __future__ import annotations

import cv2
import numpy as np

from ..base import GenerationRequest, checked_control


def control_layer(request: GenerationRequest) -> tuple[np.ndarray | None, float]:
    """The request's control frames (checked) and strength, or (None, 0) without control."""
    control = checked_control(request, "preview")
    return (None, 0.0) if control is None else (control, float(request.control_strength))


def blend_control(frame: np.ndarray, control: np.ndarray, strength: float) -> None:
    """`frame` <- (1 - strength) * frame + strength * control, in place."""
    if strength <= 0.0:
        return
    cv2.addWeighted(frame, 1.0 - strength, control, strength, 0.0, dst=frame)

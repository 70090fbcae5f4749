"""Checks of animate shots' pose: with `pose.model` configured, the folder must hold a ViTPose
model (an error at each animate shot's driving_video); without one, the driving videos are
given to the engine as ready-made pose videos, which is right only for pose renderings, so
validation says so once, naming the shots and the fix. A `pose.detector` without `pose.model`
is a warning (nothing would use it)."""

from __future__ import annotations

from typing import Any

from engine.base import EngineConfigError
from engine.pose.estimate import pose_model_identity
from stages.plan.animate import is_animate
from stages.storyboard.resolve import resolve_shot


def check_animate_pose(checker: Any, model: Any, pose_model: str | None,
                       pose_detector: str | None = None) -> None:
    """Report the pose problems of `model`'s animate shots on `checker`, and a detector that
    nothing would use."""
    if pose_detector and not pose_model:
        checker.warnings.append(
            "pose.detector is set but pose.model is not, so no pose is read and the detector is "
            "not used; set pose.model to a local ViTPose folder, or unset pose.detector")
    animated = []
    for index, shot in enumerate(model.shots):
        rs = resolve_shot(shot, model.defaults)
        if is_animate(checker.engine, rs):
            animated.append((index, shot.id, rs))
    if not animated:
        return
    if not pose_model:
        names = ", ".join(shot_id for _, shot_id, _ in animated)
        checker.warnings.append(
            f"shots {names}: {checker.engine.name} takes each driving_video as a ready-made "
            "pose video (no pose.model is configured); for a video of a performer, set "
            "`pose: {model: FOLDER}` in conf/config.yaml to a local ViTPose folder, and the "
            "pose and the face are extracted from it")
        return
    try:
        pose_model_identity(pose_model, pose_detector)
    except (EngineConfigError, OSError, ValueError) as exc:
        index, _, rs = animated[0]
        checker.add(rs.where("driving_video", ("shots", index)),
                    f"driving_video needs pose.model (and pose.detector, when set) to extract "
                    f"the performer's pose: {exc}")

"""Validation of a shot's `control:` (stages.storyboard.validate runs it per shot): the engine
takes control videos, the kind can be extracted here, the clip is a readable video inside the
storyboard's folders, and `start` lies inside it. Every problem names the key and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.base import EngineConfigError
from engine.depth.estimate import depth_model_identity
from engine.pose.estimate import pose_model_identity
from engine.registry import available_engines, engine_spec
from stages.media.probe import video_info
from stages.storyboard.checks.shot import VIDEO_SUFFIXES
from stages.storyboard.image_refs import ImageRefError
from stages.storyboard.resolve import resolve_shot


def control_engines() -> list[str]:
    """The engines that take a control video."""
    return [name for name in available_engines() if engine_spec(name).control]


# The control kinds that run a local model: its config key, what it is, and its identity check.
MODEL_KINDS = {
    "depth": ("depth.model", "a local depth model", "a transformers depth-estimation folder "
              "(Depth Anything, DPT)", lambda folder, detector: depth_model_identity(folder)),
    "pose": ("pose.model", "a local pose model", "a transformers ViTPose folder (the model and "
             "its image processor)", pose_model_identity),
}


def check_model(kind: str, folder: str | None, detector: str | None = None) -> str | None:
    """Why the configured model (and pose detector) cannot serve control kind `kind` (depth,
    pose), or None when it can (or the kind needs no model)."""
    if kind not in MODEL_KINDS:
        return None
    key, what, holds, identity = MODEL_KINDS[kind]
    section, _, field = key.partition(".")
    if not folder:
        return (f"control kind {kind!r} needs {what}: set `{section}: {{{field}: FOLDER}}` in "
                f"conf/config.yaml (or {key}=FOLDER on the command line) to {holds}; nothing "
                "is downloaded")
    try:
        identity(folder, detector)
    except (EngineConfigError, OSError, ValueError) as exc:
        return f"control kind {kind!r}: {exc}"
    return None


def check_control(checker: Any, index: int, shot: Any, defaults: Any, fps: int,
                  depth_model: str | None = None, pose_model: str | None = None,
                  pose_detector: str | None = None) -> None:
    """Problems with shot `index`'s control (its own or inherited from `defaults:`)."""
    rs = resolve_shot(shot, defaults)
    control = rs.control
    if control is None:
        return
    where = rs.where("control", ("shots", index))
    engine = checker.engine
    if not engine.control:
        checker.add(where, f"engine {engine.name!r} cannot use a control video; engines that "
                           f"can: {', '.join(control_engines())}; render with one of them "
                           f"(engine=wan_vace) or remove `control:`")
        return
    # A control inherited from defaults: is one set of settings: reported once, not per shot.
    done = checker.__dict__.setdefault("_controls_checked", set())
    if where in done:
        return
    done.add(where)
    problem = check_model(control.kind, {"depth": depth_model, "pose": pose_model}
                          .get(control.kind), pose_detector)
    if problem:
        checker.add(where + ("kind",), problem)
    _check_clip(checker, where, control, rs.seconds(fps), shot.id)


def _check_clip(checker: Any, where: tuple, control: Any, seconds: float | None,
                shot_id: str) -> None:
    try:
        full: Path = checker.resolver.file(control.video, "control video", VIDEO_SUFFIXES)
    except ImageRefError as exc:
        checker.add(where + ("video",), str(exc))
        return
    try:
        info = video_info(full)
    except (OSError, ValueError, RuntimeError):
        checker.add(where + ("video",), f"control video {control.video!r} is not a readable "
                                        "video; give an .mp4, .mkv, .mov, .webm or .avi file "
                                        "ffmpeg can decode")
        return
    if info.frames < 1 or info.duration_s <= 0:
        checker.add(where + ("video",), f"control video {control.video!r} has no frames; give "
                                        "a clip with at least one frame")
        return
    if control.start >= info.duration_s:
        checker.add(where + ("start",), f"start {control.start:g}s is at or past the end of "
                                        f"control video {control.video!r} "
                                        f"({info.duration_s:g}s long); give a start before "
                                        f"{info.duration_s:g}s")
    elif seconds is not None and control.start + seconds > info.duration_s + 1e-6:
        checker.warnings.append(
            f"shot {shot_id}: control video {control.video!r} has "
            f"{info.duration_s - control.start:g}s from start {control.start:g}s, the shot is "
            f"{seconds:g}s; its last frame is held for the rest")

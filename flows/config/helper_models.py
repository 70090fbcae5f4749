"""The helper models' part of `python -m flows.models`: the local transformers folders that
depth estimation (`depth.model`), pose (`pose.model`) and its optional person detector
(`pose.detector`) load, as conf/config.yaml or the command line sets them: found (with its
model type), not set (what needs it, and how to save one), or the error a render would give."""

from __future__ import annotations

from typing import Any, Callable

from engine.base import EngineConfigError

# key -> (what needs it, a model to save once with save_pretrained, the README section)
HELPERS: dict[str, tuple[str, str, str]] = {
    "depth.model": ("`depth: estimate` shots and control kind depth",
                    "depth-anything/Depth-Anything-V2-Small-hf", "Depth and 2.5D camera moves"),
    "pose.model": ("control kind pose and wan_animate's performer videos",
                   "usyd-community/vitpose-base-simple", "Pose model"),
    "pose.detector": ("optional, for performers small in the frame: their box for the pose model",
                      "PekingU/rtdetr_r50vd_coco_o365", "Pose model"),
}


def helper_folders(settings: Any) -> dict[str, str | None]:
    """The helper models' folders a RenderSettings names (conf/config.yaml's `depth:` and
    `pose:` with the command line's overrides), by config key; None where unset."""
    folders = {}
    for key in HELPERS:
        section, _, name = key.partition(".")
        folders[key] = (getattr(settings, section) or {}).get(name) or None
    return folders


def _identity(key: str) -> Callable[[str], dict[str, Any]]:
    if key == "depth.model":
        from engine.depth.estimate import depth_model_identity
        return depth_model_identity
    if key == "pose.model":
        from engine.pose.estimate import pose_model_identity
        return pose_model_identity
    from engine.pose.detect import detector_identity
    return detector_identity


def helper_lines(values: dict[str, Any]) -> list[str]:
    """One line per helper model; `values`: key -> the configured folder (or None)."""
    lines = []
    for key, (needs, example, section) in HELPERS.items():
        folder = values.get(key)
        if not folder:
            lines.append(f"{key}: not set ({needs}); save one once, e.g. {example} with "
                         f"save_pretrained (README \"{section}\"), then {key}=FOLDER")
            continue
        try:
            identity = _identity(key)(str(folder))
        except (EngineConfigError, OSError, ValueError) as exc:
            lines.append(f"{key}: error: {exc}")
            continue
        lines.append(f"{key}: found {folder} ({identity.get('model_type')})")
    return lines

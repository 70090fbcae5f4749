"""Checks of a shot's depth map and 2.5D camera keys: a 3D key needs `depth:`, a depth file
must be a readable grayscale image inside the storyboard's folders (the images' confinement),
and `depth: estimate` needs the config's depth model and an image to estimate from."""

from __future__ import annotations

from engine.base import EngineConfigError
from engine.depth.maps import read_depth_map
from stages.storyboard.checks.shot import Checker
from stages.storyboard.resolve import resolve_shot
from stages.storyboard.schema import Shot, ShotDefaults, image_file
from stages.storyboard.schema.camera import camera_uses_depth
from stages.storyboard.schema.depth import depth_estimated, depth_file
from stages.storyboard.yaml_source import KeyPath, format_key_path

_HOW = ("add `depth: assets/NAME_depth.png` to the shot (a grayscale PNG, white = near, black "
        "= far) or `depth: estimate` with a local depth model configured as depth.model")


def check_depth(checker: Checker, index: int, shot: Shot, defaults: ShotDefaults | None,
                depth_model: str | None) -> None:
    """Report the shot's depth problems on `checker`."""
    base: KeyPath = ("shots", index)
    rs = resolve_shot(shot, defaults)
    uses = camera_uses_depth(rs.camera)
    if uses and shot.depth is None:
        where = rs.where("camera", base)
        first = where + uses[0]
        names = ", ".join(format_key_path(("camera",) + u) for u in uses[:4])
        checker.add(first, f"{names}: a 2.5D camera move needs the depth of the shot's image; "
                           f"{_HOW} (or use the 2D keys pan_x, pan_y, zoom, rotate, tilt)")
    if shot.depth is None:
        return
    path = base + ("depth",)
    if depth_estimated(shot.depth):
        _check_estimate(checker, path, shot, rs, depth_model)
        return
    checker.image(path, depth_file(shot.depth), "depth map", remote=False, read=read_depth_map,
                  hint="give an 8- or 16-bit grayscale PNG, white = near, black = far")


def _check_estimate(checker: Checker, path: KeyPath, shot: Shot, rs, depth_model: str | None
                    ) -> None:
    if image_file(rs.image) is None or shot.start == "chain":
        checker.add(path, "`depth: estimate` estimates the depth of the shot's start image, and "
                          "this shot has none (a chained, generated or text-only start); give "
                          "`image:` a file or give the depth map as a file")
    if not depth_model:
        checker.add(path, "`depth: estimate` needs a local depth model: set `depth: {model: "
                          "FOLDER}` in conf/config.yaml (or depth.model=FOLDER on the command "
                          "line) to a transformers depth-estimation folder (Depth Anything, "
                          "DPT), or give the depth map as a file")
        return
    from engine.depth.estimate import depth_model_identity
    try:
        depth_model_identity(depth_model)
    except (EngineConfigError, OSError, ValueError) as exc:
        checker.add(path, f"`depth: estimate`: {exc}")

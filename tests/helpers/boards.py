"""Storyboards to write and plan: the planning helpers the plan tests share, and the tiny storyboard
the CLI and exit tests render."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import yaml

from engine.preview import PREVIEW_SPEC
from stages.plan.build import RenderPlan, build_plan
from stages.storyboard.validate import ValidateOptions, validate_storyboard

ENGINE = {"engine": "preview", "revision": "x"}
PARAMS = {"motion": 1.0}
_counter = itertools.count()


def write_board(directory: Path, shots: list[dict], name: str = "ep", **top: Any) -> Path:
    data: dict[str, Any] = {"resolution": "256x144", "seed": 1234}
    data.update(top)
    data["shots"] = shots
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def plan_from(
    path: Path,
    engine: dict | None = None,
    params: dict | None = None,
    **options: Any,
) -> RenderPlan:
    vs = validate_storyboard(path, PREVIEW_SPEC, ValidateOptions(**options))
    return build_plan(vs, dict(engine or ENGINE), dict(PARAMS if params is None else params))


def plan_of(tmp_path: Path, shots: list[dict], engine=None, params=None, options=None,
            **top: Any) -> RenderPlan:
    """Write the storyboard into a fresh folder under tmp_path and plan it."""
    directory = tmp_path / f"board{next(_counter)}"
    return plan_from(write_board(directory, shots, **top), engine, params, **(options or {}))


def shot_jobs(plan: RenderPlan, shot_id: str):
    return next(s for s in plan.shots if s.id == shot_id).segments


# Two shots, a chain and a post preset, small enough for a subprocess render (needs pic.png).
TINY = """
fps: 8
resolution: 96x64
shots:
  - id: one
    prompt: "a tiny shot"
    image: pic.png
    duration: 1s
    camera: {pan_x: 0.1}
  - id: two
    start: chain
    prompt: "it goes on"
    frames: 9
post: [interpolate2x]
"""

"""End to end through the flow on the preview engine: a shot with a depth file and a dolly
renders the exact depth warp, and a 2D shot beside it keeps the key it has without depth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from engine.base import CameraState
from engine.depth.maps import load_depth_map
from engine.depth.warp import DepthScene, warp_with_depth
from engine.images import load_rgb
from flows.config.settings import RenderSettings
from flows.render import EXIT_OK, run
from stages.media.png import load_png
from tests.helpers.depth_scenes import write_two_planes

torch.set_num_threads(1)

STORYBOARD = {
    "fps": 16, "resolution": "96x64", "seed": 7,
    "shots": [
        {"id": "cliff", "prompt": "a card before a wall", "image": "scene.png",
         "depth": "scene_depth.png", "frames": 9, "camera": {"dolly": 0.3}},
        {"id": "plain", "prompt": "the same wall, flat", "image": "scene.png", "frames": 9,
         "camera": {"pan_x": 0.1}},
    ],
}


def _settings(path: Path, out: Path) -> RenderSettings:
    return RenderSettings(storyboard=str(path), output_dir=str(out), post=[], retries=0,
                          retry_delay=0.0, workers=1,
                          engine={"name": "preview", "params": {"motion": 0.0, "caption": False}})


def _segment_keys(out: Path, name: str) -> dict[str, str]:
    manifest = json.loads((out / name / "manifest.json").read_text())
    return {s["id"]: [g["key"] for g in s["segments"]] for s in manifest["shots"]}


@pytest.mark.usefixtures("prefect_harness")
def test_dolly_with_a_depth_file_renders_through_the_flow(tmp_path):
    project = tmp_path / "project"
    image_path, depth_path = write_two_planes(project)
    (project / "ep.yaml").write_text(yaml.safe_dump(STORYBOARD, sort_keys=False))
    out = tmp_path / "renders"
    assert run(_settings(project / "ep.yaml", out)) == EXIT_OK

    last = load_png(out / "ep" / "frames" / "cliff_0_last.png")
    image = load_rgb(image_path, 96, 64)
    scene = DepthScene.from_map(load_depth_map(depth_path, 96, 64))
    want = warp_with_depth(image, scene, CameraState(), CameraState(dolly=0.3))
    assert np.abs(last.astype(int) - want).max() <= 1
    assert not np.array_equal(last, image)
    manifest = json.loads((out / "ep" / "manifest.json").read_text())
    assert manifest["shots"][0]["camera"] == {"dolly": 0.3}

    # The 2D shot's key is the one it gets in a storyboard that has no depth anywhere.
    flat = {**STORYBOARD, "shots": [STORYBOARD["shots"][1]]}
    (project / "flat.yaml").write_text(yaml.safe_dump(flat, sort_keys=False))
    assert run(_settings(project / "flat.yaml", out)) == EXIT_OK
    keys = _segment_keys(out, "ep")
    assert keys["plain"] == _segment_keys(out, "flat")["plain"]

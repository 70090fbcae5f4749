"""renders/NAME/control/<shot>.mp4 for animate shots with pose.model: the skeleton of the
frames the shot shows, also for a shot in several segments (each without its chained lead)."""

from __future__ import annotations

import torch

from engine.registry import engine_spec
from stages.control.publish import control_summary, publish_controls
from stages.media.video_io import video_info
from stages.plan.build import build_plan
from stages.store.cache import CacheStore
from stages.storyboard.validate import ValidateOptions, validate_storyboard
from tests.helpers.pose_scenes import save_tiny_pose_model
from tests.stages.plan.test_animate_plan import project

torch.set_num_threads(1)

BOARD = """
fps: 16
resolution: 64x64
shots:
  - id: a
    image: start.png
    driving_video: drive.mkv
    segments:
      - {prompt: "the first steps", frames: 9}
      - {prompt: "the turn", frames: 9}
"""


def test_a_shot_in_segments_publishes_the_skeleton_it_shows(tmp_path):
    model = save_tiny_pose_model(tmp_path / "vitpose")
    vs = validate_storyboard(project(tmp_path / "p", BOARD), engine_spec("wan_animate"),
                             ValidateOptions(pose_model=str(model)))
    plan = build_plan(vs, {"engine": "wan_animate"}, {})
    [shot] = plan.shots
    assert len(shot.segments) == 2 and all(j.pose is not None for j in shot.segments)
    store = CacheStore(tmp_path / "cache")
    assert control_summary(plan, store) == [
        "pose: a reads the performer in drive.mkv with pose.model (to read)"]
    written = publish_controls(plan, store, tmp_path / "out")
    assert video_info(written["a"]).frames == shot.frames  # the lead frame shown once
    assert control_summary(plan, store) == [
        "pose: a reads the performer in drive.mkv with pose.model (cached)"]

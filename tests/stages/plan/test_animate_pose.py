"""Animate shots and `pose.model`: with a pose model, every animate segment plans the model's
identity (keyed) and folder; without one, validation says the driving videos are taken as
ready-made pose videos; a broken pose.model is an error at the driving_video."""

from __future__ import annotations

import pytest

from engine.pose.estimate import PoseModels
from engine.registry import engine_spec
from stages.plan.build import build_plan
from stages.storyboard.validate import StoryboardInvalid, ValidateOptions, validate_storyboard
from tests.helpers.pose_scenes import save_tiny_pose_model
from tests.stages.plan.test_animate_plan import project

# Animate shots on an engine that only does i2v: driving videos are not read.
PLAIN = """
fps: 16
resolution: 64x64
shots:
  - {id: a, image: start.png, prompt: "the sea", frames: 9, driving_video: drive.mkv}
"""


@pytest.fixture(scope="module")
def pose_model(tmp_path_factory):
    return save_tiny_pose_model(tmp_path_factory.mktemp("pose") / "vitpose")


def validated(path, engine="wan_animate", **options):
    return validate_storyboard(path, engine_spec(engine), ValidateOptions(**options))


def test_animate_segments_plan_the_pose_model(tmp_path, pose_model):
    path = project(tmp_path)
    with_pose = build_plan(validated(path, pose_model=str(pose_model)),
                           {"engine": "wan_animate"}, {})
    without = build_plan(validated(path), {"engine": "wan_animate"}, {})
    for shot, plain in zip(with_pose.shots, without.shots):
        job = shot.segments[0]
        assert dict(job.pose)["model_type"] == "vitpose"
        assert job.pose_model == PoseModels(pose_model)
        assert plain.segments[0].pose is None and plain.segments[0].pose_model is None
        assert job.key != plain.segments[0].key  # the pose video differs, so do the pixels


def test_other_engines_plan_no_pose(tmp_path, pose_model):
    vs = validated(project(tmp_path, PLAIN), "wan21_i2v", pose_model=str(pose_model))
    jobs = [s.segments[0] for s in build_plan(vs, {"engine": "wan21_i2v"}, {}).shots]
    assert all(j.pose is None and j.pose_model is None for j in jobs)


def test_without_a_pose_model_validation_says_how_the_driving_video_is_read(tmp_path):
    vs = validated(project(tmp_path))
    [note] = [w for w in vs.warnings if "ready-made pose video" in w]
    assert note.startswith("shots a, b, c:") and "pose: {model: FOLDER}" in note
    assert not any("ready-made pose" in w for w in validated(
        project(tmp_path / "t", PLAIN), "wan21_i2v").warnings)


def test_a_broken_pose_model_is_an_error_at_the_driving_video(tmp_path):
    with pytest.raises(StoryboardInvalid) as info:
        validated(project(tmp_path), pose_model=str(tmp_path / "missing"))
    [problem] = [str(p) for p in info.value.problems]
    assert "shots[0].driving_video" in problem and "pose.model" in problem
    assert "no such folder" in problem


def test_a_person_detector_is_planned_and_keyed_with_the_pose_model(tmp_path, pose_model):
    from tests.helpers.pose_scenes import save_tiny_person_detector

    detector = save_tiny_person_detector(tmp_path / "yolos")
    path = project(tmp_path / "p")
    plain = build_plan(validated(path, pose_model=str(pose_model)), {"engine": "wan_animate"}, {})
    detected = build_plan(validated(path, pose_model=str(pose_model),
                                    pose_detector=str(detector)), {"engine": "wan_animate"}, {})
    job, before = detected.shots[0].segments[0], plain.shots[0].segments[0]
    assert job.pose_model == PoseModels(pose_model, detector)
    assert dict(dict(job.pose)["detector"])["model_type"] == "yolos"
    assert job.key != before.key  # other boxes, other keypoints
    with pytest.raises(StoryboardInvalid) as info:
        validated(path, pose_model=str(pose_model), pose_detector=str(tmp_path / "none"))
    [problem] = [str(p) for p in info.value.problems]
    assert "shots[0].driving_video" in problem and "pose.detector" in problem


def test_a_detector_without_a_pose_model_is_a_warning(tmp_path):
    vs = validated(project(tmp_path), pose_detector=str(tmp_path / "rtdetr"))
    assert any(w.startswith("pose.detector is set but pose.model is not") for w in vs.warnings)

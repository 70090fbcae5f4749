"""engine.pose: keypoints from a local ViTPose (a tiny random one, loaded like a real one), the
two-pass box, the OpenPose-style drawing, and the face boxes the head keypoints give."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine import local_models
from engine.base import EngineConfigError
from engine.pose.face import face_video, pose_face_boxes
from engine.pose import estimate
from engine.pose.draw import COLOURS, draw_pose, openpose_points
from engine.pose.estimate import estimate_poses, keypoint_box, pose_model_identity
from tests.helpers.depth_scenes import save_tiny_depth_model
from tests.helpers.pose_scenes import performer, performer_frames, save_tiny_pose_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_tiny_pose_model(tmp_path_factory.mktemp("pose") / "vitpose")


def test_tiny_vitpose_finds_keypoints_inside_the_frame(tiny_model, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    estimate.clear_pose_models()
    frames, _ = performer_frames(5)
    points = estimate_poses(frames, tiny_model)
    assert points.shape == (5, 17, 3) and points.dtype == np.float32
    assert (points[..., 0] >= 0).all() and (points[..., 0] <= 127).all()
    assert (points[..., 1] >= 0).all() and (points[..., 1] <= 111).all()
    assert ((points[..., 2] >= 0) & (points[..., 2] <= 1.5)).all()
    loaded = dict(local_models._models)
    assert np.array_equal(points, estimate_poses(frames, str(tiny_model)))
    assert dict(local_models._models) == loaded  # loaded once per folder
    assert pose_model_identity(tiny_model)["model_type"] == "vitpose"


def test_vitpose_plus_is_asked_for_its_coco_expert(tmp_path):
    """ViTPose+ (vitpose-plus-*: one expert per dataset) refuses a call without a dataset
    index; reelforge asks for expert 0, COCO's body keypoints."""
    model = save_tiny_pose_model(tmp_path / "vitpose-plus", experts=6)
    points = estimate_poses(np.zeros((2, 64, 64, 3), np.uint8), model)
    assert points.shape == (2, 17, 3)


def test_the_second_pass_looks_inside_the_keypoint_box(monkeypatch):
    """Frames where the whole-frame pass is sure of enough keypoints are estimated again inside
    the box around them; the others keep the first result."""
    calls = []
    sure, unsure = performer(60, 20), performer(60, 20)
    unsure[:, 2] = 0.1

    def fake_run(processor, net, images, boxes):
        calls.append(boxes)
        if len(calls) == 1:
            return np.stack([sure, unsure, sure])
        return np.stack([performer(61, 21)] * len(images))

    monkeypatch.setattr(estimate, "_load", lambda folder, device: (None, None))
    monkeypatch.setattr(estimate, "_model_folder", lambda model: model)
    monkeypatch.setattr(estimate, "_run", fake_run)
    points = estimate_poses(np.zeros((3, 112, 128, 3), np.uint8), "m")
    assert calls[0] == [[0.0, 0.0, 128.0, 112.0]] * 3
    assert len(calls[1]) == 2 and calls[1][0] == keypoint_box(sure, 128, 112)
    assert points[0, 0, 0] == 61 and points[1, 0, 0] == 60 and points[2, 0, 0] == 61


def test_points_outside_the_frame_are_not_sure(monkeypatch):
    guess = performer(60, 20)
    guess[0, :2] = (-5.0, 20.0)  # past the left edge
    guess[16, :2] = (127.5, 111.2)  # inside the last pixel
    monkeypatch.setattr(estimate, "_load", lambda folder, device: (None, None))
    monkeypatch.setattr(estimate, "_model_folder", lambda model: model)
    monkeypatch.setattr(estimate, "_run",
                        lambda p, n, images, boxes: np.stack([guess] * len(images)))
    [points] = estimate_poses(np.zeros((1, 112, 128, 3), np.uint8), "m")
    assert tuple(points[0]) == (0.0, 20.0, 0.0)
    assert tuple(points[16]) == pytest.approx((127.0, 111.0, 0.9))


def test_keypoint_box_grows_and_clips():
    points = performer(60, 20)
    x, y, w, h = keypoint_box(points, 128, 112)
    xs, ys = points[:, 0], points[:, 1]
    assert x < xs.min() and y < ys.min() and x + w > xs.max() and y + h > min(ys.max(), 111)
    assert y + h <= 112  # the feet (y = 100) and their margin are clipped to the frame
    points[:14, 2] = 0.1  # three confident points: too few for a box
    assert keypoint_box(points, 128, 112) is None


def test_missing_and_wrong_folders_are_config_errors(tmp_path):
    frames = np.zeros((1, 32, 32, 3), np.uint8)
    with pytest.raises(EngineConfigError, match="pose.model is not set"):
        estimate_poses(frames, "")
    with pytest.raises(EngineConfigError, match="pose.model=.*no such folder"):
        estimate_poses(frames, tmp_path / "nope")
    depth = save_tiny_depth_model(tmp_path / "depth")
    with pytest.raises(EngineConfigError, match="not a pose estimation model.*vitpose"):
        estimate_poses(frames, depth)


def test_skeleton_is_drawn_where_the_keypoints_are():
    points = performer(60, 20)
    frame = draw_pose(points, 128, 112)
    joints = openpose_points(points)
    # Neck: halfway between the shoulders, drawn in OpenPose's neck colour.
    assert joints[1] == pytest.approx((60.0, 34.0))
    x, y = (int(v) for v in joints[1])
    assert tuple(frame[y, x]) == COLOURS[1]
    # A limb's middle carries its colour at 60% (limb 0: neck to right shoulder).
    (xa, ya), (xb, yb) = joints[1], joints[2]
    middle = frame[int(round((ya + yb) / 2)), int(round((xa + xb) / 2))]
    assert np.allclose(middle, np.array(COLOURS[0]) * 0.6, atol=2)
    assert frame[100:, :20].max() == 0  # black where there is no one
    # Unsure keypoints, and the limbs that touch them, are left out.
    points[9:11, 2] = 0.0  # both wrists
    wrists = openpose_points(points)
    assert wrists[4] is None and wrists[7] is None
    unsure = draw_pose(points, 128, 112)
    assert unsure[62, 42].max() == 0 and frame[62, 42].max() > 0  # the right wrist's dot


def test_face_boxes_follow_the_head_keypoints_and_crop_the_head():
    frames, points = performer_frames(6)
    [[(x, y, w, h)]] = pose_face_boxes(points[:1])
    assert w == h == pytest.approx(max(14.0, 2.5 * 6, 24 / 3))  # the ears' spread rules
    cx, cy = points[0, :5, :2].mean(axis=0)
    assert (x + w / 2, y + h / 2) == pytest.approx((cx, cy))
    crops, notes = face_video(list(frames), 16, keypoints=points, smoothing=0.0)
    assert notes == [] and all(c.shape == (16, 16, 3) for c in crops)
    assert all(c[8, 8].min() == 255 for c in crops)  # every crop is centred on the white head
    one_point = points.copy()
    one_point[:, 1:5, 2] = 0.0  # only the nose: no box, the frame centre and a note
    _, notes = face_video(list(frames), 16, keypoints=one_point)
    assert "no face found in any" in notes[0]


def test_a_person_detector_gives_the_first_pass_its_box(tmp_path, tiny_model, monkeypatch):
    """With pose.detector, the first pass looks at the largest person's box (the whole frame
    where none is found); the detector is part of the models' identity."""
    from engine.pose import detect
    from engine.pose.estimate import PoseModels
    from tests.helpers.pose_scenes import save_tiny_person_detector

    detector = save_tiny_person_detector(tmp_path / "yolos")
    frames, _ = performer_frames(3)
    found = detect.person_boxes(frames, detector)
    assert len(found) == 3
    for box in found:  # random weights: maybe nothing sure enough; a box lies in the frame
        assert box is None or (box[0] >= 0 and box[1] >= 0 and box[0] + box[2] <= 128
                               and box[1] + box[3] <= 112)
    looked = []
    real_run = estimate._run
    monkeypatch.setattr(detect, "person_boxes",
                        lambda images, model, device="cpu": [[10.0, 5.0, 40.0, 90.0], None, None])
    monkeypatch.setattr(estimate, "_run", lambda p, n, images, boxes: looked.append(boxes)
                        or real_run(p, n, images, boxes))
    points = estimate_poses(frames, PoseModels(tiny_model, detector))
    assert points.shape == (3, 17, 3)
    assert looked[0] == [[10.0, 5.0, 40.0, 90.0], [0.0, 0.0, 128.0, 112.0],
                         [0.0, 0.0, 128.0, 112.0]]
    plain, with_detector = (pose_model_identity(tiny_model),
                            pose_model_identity(PoseModels(tiny_model, detector)))
    assert with_detector["detector"]["model_type"] == "yolos"
    assert {k: v for k, v in with_detector.items() if k != "detector"} == plain


def test_a_detector_without_a_person_label_is_a_config_error(tmp_path, tiny_model):
    from engine.pose import detect
    from tests.helpers.pose_scenes import save_tiny_person_detector

    folder = save_tiny_person_detector(tmp_path / "pets", labels=("cat", "dog"))
    with pytest.raises(EngineConfigError, match="pose.detector=.*no 'person' label"):
        detect.person_boxes(np.zeros((1, 32, 32, 3), np.uint8), folder)
    # Validation sees it too (pose_model_identity reads the labels without loading).
    with pytest.raises(EngineConfigError, match="no 'person' label.*cat, dog"):
        pose_model_identity(tiny_model, folder)
    with pytest.raises(EngineConfigError, match="pose.detector=.*no such folder"):
        pose_model_identity(tiny_model, tmp_path / "missing")


def test_keypoints_land_where_the_heatmap_peaks_inside_the_box(tiny_model, monkeypatch):
    """The box goes to the model as COCO (x, y, w, h) and comes back in image pixels: a heatmap
    peak in the middle is the box's centre, one at a quarter is in the box's top-left part."""
    from types import SimpleNamespace

    processor, net = estimate._load(estimate._model_folder(tiny_model), "cpu")
    peak = {}

    def fake_forward(pixel_values, **kwargs):
        heatmaps = torch.zeros(len(pixel_values), 17, 16, 12)  # the 64x48 input / 4
        heatmaps[:, :, peak["y"], peak["x"]] = 1.0
        return SimpleNamespace(heatmaps=heatmaps)

    monkeypatch.setattr(net, "forward", fake_forward)
    frame = np.zeros((112, 128, 3), np.uint8)
    box = [40.0, 20.0, 30.0, 60.0]
    peak.update(x=6, y=8)
    [points] = estimate._run(processor, net, [frame], [box])
    cell = 60 * 1.25 / 16  # the padded box's height over the heatmap's rows
    assert np.allclose(points[:, :2], [55.0, 50.0], atol=1.5 * cell)
    peak.update(x=3, y=4)
    [points] = estimate._run(processor, net, [frame], [box])
    assert (points[:, 0] < 55.0 - cell).all() and (points[:, 1] < 50.0 - cell).all()
    assert (points[:, 0] > 30.0).all() and (points[:, 1] > 5.0).all()  # not outside the box

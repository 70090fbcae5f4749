"""Control extraction per kind, on a tiny clip of a square moving right (made here)."""

from __future__ import annotations

import numpy as np
import pytest

from stages.control import extract
from stages.control.clip import sampled_frames
from tests.helpers.control_clips import square_frames, write_square_clip


def test_sampling_resamples_to_the_plan_fps_from_start_and_holds_the_last_frame(tmp_path):
    clip = write_square_clip(tmp_path / "c.mkv", frames=12, fps=8, codec="ffv1")
    source = square_frames(12)
    got = np.stack(list(sampled_frames(clip, 0.5, 6, 16, 64, 48)))
    # 16 fps from 0.5s of an 8 fps clip: source frames 4, 5(4.5 up), 5, 6, 6, 7
    assert np.array_equal(got, source[[4, 5, 5, 6, 6, 7]])
    tail = list(sampled_frames(clip, 1.25, 4, 8, 64, 48))  # runs past frame 11: held
    assert np.array_equal(tail[-1], source[11]) and len(tail) == 4


def test_sampling_resizes_to_the_frame_size(tmp_path):
    clip = write_square_clip(tmp_path / "c.mkv", codec="ffv1")
    frames = list(sampled_frames(clip, 0, 3, 8, 32, 32))
    assert all(f.shape == (32, 32, 3) and f.dtype == np.uint8 for f in frames)


def test_gray_is_luminance_as_rgb():
    out = list(extract.gray(square_frames(2)))
    assert out[0].shape == (48, 64, 3)
    assert np.array_equal(out[0][..., 0], out[0][..., 1])
    assert out[0][24, 20, 0] > 200 and out[0][2, 2, 0] < 40


def test_canny_finds_the_square_outline_only():
    edges = next(extract.canny(square_frames(1)))
    top, left = 16, 8
    assert edges[top:top + 16, left - 1:left + 1].max() == 255  # its left border
    assert edges[:10].max() == 0 and edges[24, 14] .max() == 0  # flat areas: none


def test_flow_colours_motion_to_the_right_red_and_still_areas_dark():
    out = list(extract.flow(square_frames(5)))
    assert len(out) == 5
    square = out[2][16:32, 12:28].reshape(-1, 3).astype(int)
    moving = square[square.max(axis=1) > 60]
    assert len(moving) > 50
    # hue 0 (direction: +x) is red on the colour wheel
    assert np.median(moving[:, 0]) > 2 * np.median(moving[:, 2])
    assert out[2][:6].mean() < 20  # the still background
    assert np.array_equal(out[-1], out[-2])  # the last frame repeats the flow into it


def test_flow_direction_sets_the_hue():
    right = np.zeros((8, 8, 2), np.float32)
    right[..., 0] = 4.0
    down = np.zeros((8, 8, 2), np.float32)
    down[..., 1] = 4.0
    assert not np.array_equal(extract.flow_colours(right), extract.flow_colours(down))
    assert extract.flow_colours(np.zeros((8, 8, 2), np.float32)).max() == 0


def test_depth_uses_the_depth_estimator_in_chunks_white_near(monkeypatch):
    calls = []

    def fake(images, model, device="cpu"):
        calls.append((len(images), model, device))
        return np.linspace(0, 1, images.shape[2], dtype=np.float32)[None, None].repeat(
            images.shape[1], 1).repeat(len(images), 0)

    monkeypatch.setattr("engine.depth.estimate.estimate_depth", fake)
    monkeypatch.setattr(extract, "MODEL_CHUNK", 4)
    out = list(extract.extractor("depth", "models/depth")(iter(square_frames(6))))
    assert [c[0] for c in calls] == [4, 2] and calls[0][1] == "models/depth"
    assert out[0][0, -1, 0] == 255 and out[0][0, 0, 0] == 0


def test_pose_is_the_skeleton_of_the_keypoints_chunk_by_chunk(monkeypatch):
    from engine.pose.draw import draw_pose
    from tests.helpers.pose_scenes import performer_frames

    frames, points = performer_frames(6)
    calls = []

    def fake(images, model, device="cpu"):
        calls.append((len(images), model))
        start = sum(c[0] for c in calls[:-1])
        return points[start:start + len(images)]

    monkeypatch.setattr("engine.pose.estimate.estimate_poses", fake)
    monkeypatch.setattr(extract, "MODEL_CHUNK", 4)
    out = list(extract.extractor("pose", "models/pose")(iter(frames)))
    assert [c[0] for c in calls] == [4, 2] and calls[0][1] == "models/pose"
    assert all(np.array_equal(o, draw_pose(p, 128, 112)) for o, p in zip(out, points))


def test_an_unknown_kind_is_not_extracted():
    with pytest.raises(ValueError, match="pose"):
        extract.extractor("normals")

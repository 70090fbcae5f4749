"""Wan Animate's inputs: the face track of the driving video (tracking, smoothing, cropping,
frames without a face), and the call the engine makes (reference image, face size, windows).

The tracking logic is tested with an injected detector. The installed OpenCV (5.x) has no
CascadeClassifier, so the default path is tested as what it is there: no detector, the frame
centre, and a note saying how to get a track (a YuNet ONNX file)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.pose.face import (crop_square, default_detector, face_video, pose_face_boxes,
                              track_boxes, track_faces)


def moving_face(n: int = 8, h: int = 96, w: int = 128) -> list[np.ndarray]:
    frames = []
    for i in range(n):
        f = np.zeros((h, w, 3), np.uint8)
        x = 10 + 8 * i
        f[30:60, x:x + 30] = 255  # the "face": a white square moving right
        frames.append(f)
    return frames


def white_box(frame):
    ys, xs = np.nonzero(frame[:, :, 0] > 128)
    if len(xs) == 0:
        return []
    return [(int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1)]


def test_track_follows_the_face_and_crops_square():
    frames = moving_face()
    crops, notes = face_video(frames, 32, white_box, smoothing=0.0)
    assert notes == [] and all(c.shape == (32, 32, 3) for c in crops)
    # Unsmoothed, every crop is centred on the face: its centre pixel is white.
    assert all(c[16, 16, 0] == 255 for c in crops)
    # The centre crop (what this replaced) misses the face in the first frame.
    assert frames[0][48, 64, 0] == 0


def test_missing_detections_reuse_the_previous_box_with_a_note():
    frames = moving_face()
    misses = {3, 4}
    detector = lambda f, calls=iter(range(100)): [] if next(calls) in misses else white_box(f)
    track = track_faces(frames, detector, smoothing=0.0)
    assert track.detected == [i not in misses for i in range(8)]
    assert track.boxes[3] == track.boxes[2] == track.boxes[4]
    assert "2 of 8" in track.notes[0] and "frame 3" in track.notes[0]


def test_smoothing_damps_jitter():
    frames = [np.zeros((96, 128, 3), np.uint8)] * 10
    jitter = iter([(40 + (6 if i % 2 else -6), 30, 30, 30) for i in range(10)])
    track = track_faces(frames, lambda f: [next(jitter)], smoothing=0.7)
    xs = [b[0] for b in track.boxes]
    assert max(np.abs(np.diff(xs[3:]))) < 12 * 0.5  # raw detections jump 12 px per frame


def test_smoothing_does_not_trail_a_moving_face():
    """Smoothed forwards and backwards with mirrored ends: steady motion keeps its place to the
    last frame (one exponential pass would trail by 1.5 frames of motion at 0.6)."""
    frames = moving_face(8)
    track = track_faces(frames, white_box, smoothing=0.6)
    centres = [25 + 8 * i for i in range(8)]  # x + w / 2 of the white square
    assert [b[0] for b in track.boxes] == pytest.approx(centres, abs=0.5)


def test_the_end_frames_are_smoothed_like_the_middle():
    """Noisy boxes on a steady walk: the first and last boxes come out closer to the truth than
    the raw detections (the ends are not pinned to their own jitter)."""
    rng = np.random.default_rng(0)
    raw_error, end_error = [], []
    for _ in range(100):
        truth = 30.0 + 6.0 * np.arange(16)
        noisy = truth + rng.normal(0, 4, 16)
        track = track_boxes([[(x - 10, 40.0, 20.0, 20.0)] for x in noisy], (112, 256),
                            smoothing=0.6, margin=1.0)
        xs = np.array([b[0] for b in track.boxes])
        raw_error += [abs(noisy[0] - truth[0]), abs(noisy[-1] - truth[-1])]
        end_error += [abs(xs[0] - truth[0]), abs(xs[-1] - truth[-1])]
    assert np.mean(end_error) < 0.75 * np.mean(raw_error)


def test_head_points_on_top_of_each_other_give_no_box():
    points = np.zeros((1, 17, 3), np.float32)
    points[0, 0] = points[0, 1] = (10, 10, 0.9)  # nose and an eye in one place
    assert pose_face_boxes(points) == [[]]
    crops, notes = face_video([np.zeros((32, 32, 3), np.uint8)], 16, keypoints=points)
    assert crops[0].shape == (16, 16, 3) and "no face found" in notes[0]


def test_no_face_anywhere_is_the_centre_with_a_note():
    frames = moving_face(3)
    track = track_faces(frames, lambda f: [])
    assert track.boxes[0] == pytest.approx((64.0, 48.0, 96.0))
    assert "no face found in any" in track.notes[0]


def test_crop_stays_inside_the_frame():
    frame = np.arange(96 * 128 * 3, dtype=np.uint32).reshape(96, 128, 3).astype(np.uint8)
    assert crop_square(frame, (2.0, 2.0, 40.0), 20).shape == (20, 20, 3)
    assert crop_square(frame, (120.0, 90.0, 500.0), 16).shape == (16, 16, 3)


def test_default_detector_on_this_opencv():
    detector, why = default_detector()
    blank = np.full((96, 128, 3), 127, np.uint8)
    assert list(detector(blank)) == []  # nothing face-like: no detection either way
    if why is not None:  # OpenCV 5: no cascade; the note names the fix
        assert "face_detector" in why
        _, notes = face_video([blank], 16)
        assert notes[0] == why


class _Config:
    motion_encoder_size = 24


class _Transformer:
    config = _Config()


class _Pipe:
    transformer = _Transformer()


def animate_engine(tmp_path, **options):
    from engine.registry import get_engine

    (tmp_path / "model_index.json").write_text('{"_class_name": "WanAnimatePipeline"}')
    engine = get_engine("wan_animate", model=str(tmp_path), **options)
    engine.text_embeddings = lambda pipe, entry, request: {}
    return engine


def test_animate_call_keeps_the_reference_and_windows_the_shot(tmp_path):
    from tests.helpers.tiny_pipelines import tiny_request

    reference = np.full((32, 48, 3), 200, np.uint8)
    driving = np.stack([np.zeros((32, 48, 3), np.uint8)] * 161)
    request = tiny_request(num_frames=161, width=48, height=32, start_image=reference,
                           driving_video=driving)
    kwargs = animate_engine(tmp_path, handover_frames=5).call_kwargs(_Pipe(), None, request)
    # One call over the whole driving video; the pipeline windows it (77 frames each, handing
    # over its own last 5), always conditioning on the same reference image.
    assert len(kwargs["pose_video"]) == 161 and kwargs["segment_frame_length"] == 77
    assert kwargs["prev_segment_conditioning_frames"] == 5
    assert np.array_equal(np.asarray(kwargs["image"]), reference)
    assert {f.size for f in kwargs["face_video"]} == {(24, 24)}  # motion_encoder_size
    with pytest.raises(Exception, match="handover_frames"):
        animate_engine(tmp_path, handover_frames=3).call_kwargs(_Pipe(), None, request)


def test_with_keypoints_the_pose_video_is_drawn_and_the_face_follows_the_head(tmp_path):
    """A performer video with its keypoints (what `pose.model` gives): the pipeline gets the
    skeleton drawn from them as its pose video, and face crops centred on the head."""
    from engine.pose.draw import draw_pose
    from tests.helpers.pose_scenes import performer_frames
    from tests.helpers.tiny_pipelines import tiny_request

    frames, points = performer_frames(9)
    request = tiny_request(num_frames=9, width=128, height=112,
                           start_image=np.full((112, 128, 3), 90, np.uint8),
                           driving_video=frames, driving_pose=points)
    kwargs = animate_engine(tmp_path).call_kwargs(_Pipe(), None, request)
    pose = [np.asarray(f) for f in kwargs["pose_video"]]
    assert all(np.array_equal(p, draw_pose(k, 128, 112)) for p, k in zip(pose, points))
    faces = [np.asarray(f) for f in kwargs["face_video"]]
    assert {f.shape for f in faces} == {(24, 24, 3)}
    # Smoothed towards a head moving 6 px a frame: the crop's middle stays on the white head.
    assert all(f[12, 12].min() == 255 for f in faces)
    # Without keypoints the same video is the pose video as given.
    plain = animate_engine(tmp_path).call_kwargs(
        _Pipe(), None, tiny_request(num_frames=9, width=128, height=112,
                                    start_image=request.start_image, driving_video=frames))
    assert np.array_equal(np.asarray(plain["pose_video"][3]), frames[3])

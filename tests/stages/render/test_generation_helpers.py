"""Camera moves as words, the exact post warp, fallback adaptation, and source-video slices."""

from __future__ import annotations

import numpy as np
import pytest

from engine.base import CameraState, EngineError, GenerationRequest
from engine.camera_prompt import describe_camera, with_camera
from engine.preview import PreviewEngine
from engine.registry import get_engine
from stages.render.generate import adapt_request, apply_camera_post, generate_frames, retime
from stages.render.source_video import video_slice
from stages.media.video_io import write_video
from tests.helpers.synthetic import texture


def path(**end) -> tuple[CameraState, ...]:
    return (CameraState(), CameraState(**end))


@pytest.mark.parametrize("move, words", [
    ({"pan_x": -0.05}, "the camera pans left slowly"),
    ({"pan_x": 0.5}, "the camera pans right quickly"),
    ({"pan_y": -0.15}, "the camera pans up"),
    ({"zoom": 0.05}, "slow zoom in"),
    ({"zoom": -0.5}, "fast zoom out"),
    ({"rotate": 10.0}, "the camera rolls clockwise"),
    ({"tilt": 5.0}, "the camera tilts up"),
])
def test_camera_words(move, words):
    assert describe_camera(path(**move)) == words


def test_camera_words_largest_move_first_and_static_is_silent():
    assert describe_camera(path(pan_x=0.02, zoom=0.5)).startswith("fast zoom in")
    assert describe_camera(path()) == ""
    assert with_camera("A boat", path()) == "A boat"
    assert with_camera("A boat", path(zoom=0.2)) == "A boat. Camera: zoom in."


def request(**kw) -> GenerationRequest:
    base = dict(prompt="x", width=64, height=48, num_frames=9, fps=16, seed=1)
    base.update(kw)
    return GenerationRequest(**base)


def test_post_camera_warps_exactly_like_the_preview():
    still = np.repeat(texture(np.random.default_rng(0), 48, 64)[None], 9, axis=0)
    cam = tuple(CameraState(zoom=0.05 * i) for i in range(9))
    moved = apply_camera_post(still, request(camera=cam))
    assert np.array_equal(moved[0], still[0])
    assert not np.array_equal(moved[-1], still[-1])
    # The preview engine, given the same camera on a static start image, draws the same move.
    preview = PreviewEngine().generate(request(start_image=still[0], camera=cam,
                                               params={"motion": 0.0, "caption": False}))
    assert np.abs(preview[-1].astype(int) - moved[-1].astype(int)).mean() < 1.0


def test_generate_frames_with_camera_post_gives_the_engine_a_still_camera():
    seen = []

    class Spy(PreviewEngine):
        def generate(self, req, progress=None):
            seen.append(req)
            return super().generate(req, progress)

    cam = tuple(CameraState(pan_x=0.01 * i) for i in range(9))
    frames, record = generate_frames(request(camera=cam), Spy(), None, camera_apply="post")
    assert seen[0].camera == () and frames.shape == (9, 48, 64, 3)
    assert record.engine == "preview" and record.fallback_reason is None


def test_retime_keeps_ends_and_counts():
    frames = np.stack([np.full((2, 2, 3), v, np.uint8) for v in (0, 100, 200)])
    out = retime(frames, 5)
    assert len(out) == 5 and out[0].max() == 0 and out[-1].min() == 200
    assert out[1].mean() == 50
    assert retime(frames, 3) is frames


def test_adapt_request_to_a_smaller_engine():
    svd = get_engine("preview")  # any engine object; adapt reads its spec
    from dataclasses import replace

    from engine.diffusers.families import DIFFUSERS_SPECS

    svd.spec = DIFFUSERS_SPECS["svd"][0]
    req = request(num_frames=81, width=832, height=480, start_image=np.zeros((480, 832, 3),
                                                                             np.uint8))
    adapted, note = adapt_request(req, svd)
    assert (adapted.num_frames, adapted.width, adapted.height) == (25, 832, 448)
    assert adapted.start_image.shape == (448, 832, 3) and "retimed to 81" in note
    with pytest.raises(EngineError, match="cannot do t2v"):
        adapt_request(replace(req, start_image=None), svd)


def test_video_slice_follows_shot_time(tmp_path):
    frames = [np.full((32, 48, 3), i * 10, np.uint8) for i in range(20)]
    source = tmp_path / "src.mkv"
    write_video(source, frames, 10, codec="ffv1")
    # A segment starting 0.5 s in, 5 frames at 20 fps: source frames at 0.5, 0.55, ... s.
    part = video_slice(source, 0.5, 5, 20, 48, 32)
    assert part.shape == (5, 32, 48, 3)
    assert [int(f[0, 0, 0]) for f in part] == [50, 60, 60, 70, 70]
    # Past the end: the last frame holds.
    tail = video_slice(source, 1.9, 3, 10, 48, 32)
    assert [int(f[0, 0, 0]) for f in tail] == [190, 190, 190]

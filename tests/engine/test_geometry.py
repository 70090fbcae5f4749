"""Camera math: conventions asserted numerically (see engine/geometry.py's docstring)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.base import CameraState
from engine.geometry import (
    apply_homography,
    camera_homography,
    focal_length,
    frame_centre,
    is_identity_homography,
    relative_homography,
    warp_frame,
)

cv2.setNumThreads(1)

W, H = 96, 64


def marker_image(w: int, h: int, x: int, y: int) -> np.ndarray:
    img = np.zeros((h, w), np.uint8)
    img[y, x] = 255
    return img


def peak(img: np.ndarray) -> tuple[int, int]:
    y, x = np.unravel_index(int(np.argmax(img)), img.shape[:2])
    return int(x), int(y)


def smooth_image(w: int, h: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(40, 216, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def test_identity_state_is_identity_matrix():
    h = camera_homography(CameraState(), W, H)
    assert h.shape == (3, 3) and h.dtype == np.float64
    assert np.array_equal(h, np.eye(3))


def test_centre_and_focal_length():
    assert frame_centre(W, H) == ((W - 1) / 2, (H - 1) / 2)
    assert focal_length(832, 480) == 832.0


@pytest.mark.parametrize("pan", [0.25, -0.125, 0.5])
def test_pan_x_moves_picture_left_by_fraction_of_width(pan):
    h = camera_homography(CameraState(pan_x=pan), W, H)
    pts = np.array([[10.0, 5.0], [50.0, 30.0], [80.0, 60.0]])
    out = apply_homography(h, pts)
    np.testing.assert_allclose(out, pts + [-pan * W, 0.0], atol=1e-12)


def test_pan_x_moves_marker_exactly_in_pixels():
    img = marker_image(W, H, 60, 30)
    out = warp_frame(img, camera_homography(CameraState(pan_x=0.25), W, H), border="constant")
    assert peak(out) == (60 - 24, 30)
    assert out[30, 36] == 255  # integer shift: no interpolation blur
    assert int(out.sum()) == 255


def test_pan_y_moves_picture_up():
    img = marker_image(W, H, 40, 40)
    out = warp_frame(img, camera_homography(CameraState(pan_y=0.25), W, H), border="constant")
    assert peak(out) == (40, 40 - 16)
    assert out[24, 40] == 255


def test_zoom_one_doubles_distances_from_centre():
    cx, cy = frame_centre(W, H)
    h = camera_homography(CameraState(zoom=1.0), W, H)
    pts = np.array([[cx + 10, cy], [cx, cy - 7], [cx - 3, cy + 5], [cx, cy]])
    out = apply_homography(h, pts)
    np.testing.assert_allclose(out - [cx, cy], 2.0 * (pts - [cx, cy]), atol=1e-12)


def test_zoom_out_and_marker():
    w, h = 97, 65  # odd sizes: integer centre (48, 32)
    img = marker_image(w, h, 58, 32)
    out = warp_frame(img, camera_homography(CameraState(zoom=1.0), w, h), border="constant")
    assert peak(out) == (68, 32)
    half = camera_homography(CameraState(zoom=-0.5), w, h)
    np.testing.assert_allclose(apply_homography(half, [[58.0, 32.0]]), [[53.0, 32.0]], atol=1e-12)


def test_rotate_90_turns_picture_counter_clockwise():
    cx, cy = frame_centre(W, H)
    h = camera_homography(CameraState(rotate=90), W, H)
    out = apply_homography(h, [[cx + 10, cy], [cx, cy - 10]])
    # right of centre -> above centre; above centre -> left of centre (counter-clockwise on screen)
    np.testing.assert_allclose(out, [[cx, cy - 10], [cx - 10, cy]], atol=1e-12)
    # a small positive roll: a point right of centre rises (y decreases)
    small = apply_homography(camera_homography(CameraState(rotate=5), W, H), [[cx + 20, cy]])
    assert small[0, 1] < cy - 1.0
    np.testing.assert_allclose(np.hypot(*(small[0] - [cx, cy])), 20.0, atol=1e-9)


def test_rotate_90_marker_image():
    w, h = 97, 65
    img = marker_image(w, h, 58, 32)  # 10 px right of the centre (48, 32)
    out = warp_frame(img, camera_homography(CameraState(rotate=90), w, h), border="constant")
    assert peak(out) == (48, 22)


def test_rotate_minus_90_is_clockwise():
    cx, cy = frame_centre(W, H)
    out = apply_homography(camera_homography(CameraState(rotate=-90), W, H), [[cx + 10, cy]])
    np.testing.assert_allclose(out, [[cx, cy + 10]], atol=1e-12)


def test_tilt_up_moves_picture_down_and_narrows_top():
    cx, cy = frame_centre(W, H)
    f = focal_length(W, H)
    h = camera_homography(CameraState(tilt=10), W, H)
    centre = apply_homography(h, [[cx, cy]])[0]
    np.testing.assert_allclose(centre, [cx, cy + f * np.tan(np.radians(10))], atol=1e-9)
    corners = apply_homography(h, [[0, 0], [W - 1, 0], [0, H - 1], [W - 1, H - 1]])
    top = corners[1, 0] - corners[0, 0]
    bottom = corners[3, 0] - corners[2, 0]
    assert top < W - 1 - 0.5 < W - 1 + 0.5 < bottom  # top narrower, bottom wider than before
    # symmetric about the vertical centre line
    np.testing.assert_allclose(corners[0, 0] + corners[1, 0], 2 * cx, atol=1e-9)
    # tilting down mirrors it
    down = apply_homography(
        camera_homography(CameraState(tilt=-10), W, H), [[0, 0], [W - 1, 0], [0, H - 1], [W - 1, H - 1]]
    )
    assert down[1, 0] - down[0, 0] > down[3, 0] - down[2, 0] + 1.0
    np.testing.assert_allclose(down[1, 0] - down[0, 0], bottom, atol=1e-9)


def test_relative_of_state_to_itself_is_identity():
    s = CameraState(pan_x=0.1, pan_y=-0.05, zoom=0.3, rotate=12, tilt=4)
    assert np.array_equal(relative_homography(s, s, W, H), np.eye(3))
    copy = CameraState(*s.as_tuple())
    assert is_identity_homography(relative_homography(copy, s, W, H))
    # numerically computed: H(s) @ inv(H(s)) with a different but equal-valued path
    h = camera_homography(s, W, H) @ np.linalg.inv(camera_homography(s, W, H))
    np.testing.assert_allclose(h, np.eye(3), atol=1e-12)


def test_relative_to_origin_is_absolute():
    s = CameraState(pan_x=0.2, zoom=0.1, rotate=-7, tilt=3)
    np.testing.assert_allclose(
        relative_homography(s, CameraState(), W, H), camera_homography(s, W, H), atol=1e-12
    )


def test_relative_homographies_compose():
    a = CameraState(pan_x=0.1, zoom=0.2, rotate=5)
    b = CameraState(pan_x=0.3, pan_y=0.1, zoom=0.5, tilt=6)
    c = CameraState(pan_y=-0.2, rotate=-20, tilt=-3, zoom=-0.3)
    ab = relative_homography(b, a, W, H)  # a-view -> b-view
    bc = relative_homography(c, b, W, H)  # b-view -> c-view
    ac = relative_homography(c, a, W, H)
    composed = bc @ ab
    np.testing.assert_allclose(composed / composed[2, 2], ac, atol=1e-10)
    # and inverse relation
    ba = relative_homography(a, b, W, H)
    np.testing.assert_allclose(ba @ ab / (ba @ ab)[2, 2], np.eye(3), atol=1e-10)


def test_pan_and_zoom_order():
    # pan is in source pixels before zoom: with zoom 1.0 a 0.25 pan moves the picture 2*0.25*W
    cx, cy = frame_centre(W, H)
    h = camera_homography(CameraState(pan_x=0.25, zoom=1.0), W, H)
    out = apply_homography(h, [[cx + 24, cy]])
    np.testing.assert_allclose(out, [[cx, cy]], atol=1e-12)
    out2 = apply_homography(h, [[cx, cy]])
    np.testing.assert_allclose(out2, [[cx - 48, cy]], atol=1e-12)


def test_warp_composition_matches_product():
    img = smooth_image(128, 96)
    h1 = camera_homography(CameraState(pan_x=0.03, rotate=2), 128, 96)
    h2 = camera_homography(CameraState(zoom=0.05, tilt=1.5), 128, 96)
    twice = warp_frame(warp_frame(img, h1), h2).astype(np.float64)
    once = warp_frame(img, h2 @ h1).astype(np.float64)
    inner = (slice(16, -16), slice(16, -16))
    assert np.abs(twice[inner] - once[inner]).mean() < 1.5


def test_warp_identity_fast_path_returns_copy():
    img = smooth_image(64, 48)
    out = warp_frame(img, np.eye(3))
    assert out is not img and np.array_equal(out, img)
    out[0, 0] = 0
    assert not np.shares_memory(out, img)


def test_warp_reflect_never_shows_black_and_keeps_shape():
    img = np.full((64, 96, 3), 120, np.uint8)
    img[:, :48] = 200
    for state in [CameraState(pan_x=0.4), CameraState(zoom=-0.5), CameraState(rotate=30, tilt=10)]:
        out = warp_frame(img, camera_homography(state, 96, 64))
        assert out.shape == img.shape and out.dtype == np.uint8
        assert out.min() >= 100
    black = warp_frame(img, camera_homography(CameraState(pan_x=0.4), 96, 64), border="constant")
    assert black.min() == 0


def test_warp_keeps_single_channel_axis_and_float():
    img = np.random.default_rng(1).random((32, 48, 1)).astype(np.float32)
    out = warp_frame(img, camera_homography(CameraState(pan_x=0.1), 48, 32))
    assert out.shape == (32, 48, 1) and out.dtype == np.float32


@pytest.mark.parametrize(
    "state", [CameraState(zoom=-1.0), CameraState(tilt=90), CameraState(pan_x=float("nan"))]
)
def test_invalid_states_raise(state):
    with pytest.raises(ValueError):
        camera_homography(state, W, H)


def test_bad_border_and_matrix_raise():
    img = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="border"):
        warp_frame(img, np.eye(3), border="mirror")
    with pytest.raises(ValueError, match="3x3"):
        warp_frame(img, np.eye(2))

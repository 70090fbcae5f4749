"""The depth warp on a synthetic two-plane scene whose geometry is known, and its reduction to
the 2D homography warp for a flat depth map."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.base import CameraState
from engine.depth.camera3d import depth_to_disparity
from engine.depth.warp import DepthScene, depth_guide, warp_with_depth
from engine.geometry import camera_homography, warp_frame
from tests.helpers.depth_scenes import FAR, NEAR, H, W, texture, two_planes


def _blob_x(image: np.ndarray, channel: int) -> float:
    """x of the centroid of the bright marker drawn in `channel`."""
    weight = np.clip(image[..., channel].astype(np.float64) - 128, 0, None)
    return float((weight * np.arange(W)[None, :]).sum() / weight.sum())


def _marked_planes() -> tuple[np.ndarray, np.ndarray]:
    """The two planes, dark, with a red marker on the card and a green one on the background."""
    image, depth, card = two_planes()
    image = (image // 4).astype(np.uint8)
    yy, xx = np.mgrid[0:H, 0:W]
    for channel, (x, y) in ((0, (32, 24)), (1, (10, 6))):
        blob = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.5 ** 2))
        image[..., channel] = np.maximum(image[..., channel], (blob * 255).astype(np.uint8))
    return image, depth


def test_two_planes_parallax_matches_geometry():
    image, depth = _marked_planes()
    holes: list = []
    out = warp_with_depth(image, DepthScene.from_map(depth), CameraState(),
                          CameraState(truck=0.05), holes)
    near = _blob_x(out, 0) - _blob_x(image, 0)
    far = _blob_x(out, 1) - _blob_x(image, 1)
    # The card is the subject (the frame's central third): it moves truck * W; the background
    # moves less by the ratio of their depths, which is the ratio of their inverse depths.
    predicted_ratio = float(depth_to_disparity(NEAR) / depth_to_disparity(FAR))
    assert near == pytest.approx(-0.05 * W, abs=0.1)
    assert near / far == pytest.approx(predicted_ratio, rel=0.05)
    # The card uncovers background on one side: those pixels are filled, not left empty.
    assert holes[0].any()
    assert out.shape == image.shape and out.dtype == np.uint8


def test_disocclusions_are_inpainted_not_smeared():
    image, depth, card = two_planes()
    image[card] = (255, 0, 0)  # a red card on a dark, red-free background
    image[~card] = (0, 60, 120)
    holes: list = []
    out = warp_with_depth(image, DepthScene.from_map(depth), CameraState(),
                          CameraState(truck=0.1), holes)
    mask = holes[0]
    assert mask.sum() >= 5
    # The uncovered strip is background now, filled from the far side only: no red smear.
    assert out[mask][:, 0].max() < 30
    assert np.abs(out[mask].astype(int) - (0, 60, 120)).max() < 30
    assert np.all(out.reshape(-1, 3).max(axis=1) > 0)  # no black holes anywhere


def test_dolly_grows_near_things_faster():
    image, depth, card = two_planes()
    scene = DepthScene.from_map(depth)
    out = warp_with_depth(image, scene, CameraState(), CameraState(dolly=0.3))
    red = np.zeros_like(image)
    red[card] = 255
    grown = warp_with_depth(red, scene, CameraState(), CameraState(dolly=0.3))
    # The card (subject distance 1) scales by 1 / (1 - 0.3).
    area = (grown[..., 0] > 128).sum() / card.sum()
    assert area == pytest.approx((1 / 0.7) ** 2, rel=0.12)
    assert out.shape == image.shape


@pytest.mark.parametrize("flat, deep", [
    (CameraState(pan_x=0.1), CameraState(truck=0.1)),
    (CameraState(pan_y=-0.1), CameraState(pedestal=0.1)),
    (CameraState(zoom=0.25), CameraState(dolly=0.2)),
    (CameraState(zoom=-0.2), CameraState(dolly=-0.25)),
    (CameraState(pan_x=0.1, rotate=10, tilt=5), CameraState(pan_x=0.1, rotate=10, tilt=5,
                                                             dolly_zoom=0.3)),
])
def test_flat_depth_reduces_to_the_2d_homography(flat, deep):
    image = texture(3)
    scene = DepthScene.from_map(np.full((H, W), 0.5, np.float32))
    holes: list = []
    got = warp_with_depth(image, scene, CameraState(), deep, holes)
    want = warp_frame(image, camera_homography(flat, W, H))
    assert not holes[0].any()
    assert np.abs(got.astype(int) - want).max() <= 1


def test_orbit_of_a_flat_plane_is_its_plane_homography():
    image = texture(4)
    scene = DepthScene.from_map(np.full((H, W), 0.5, np.float32))
    got = warp_with_depth(image, scene, CameraState(), CameraState(orbit=8.0))
    # The plane z = 1 seen from the orbited camera: H = K (R - t n^T / d) K^-1.
    f, cx, cy = float(max(W, H)), (W - 1) / 2, (H - 1) / 2
    k = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.0]])
    a = np.radians(8.0)
    r = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    c = np.array([np.sin(a), 0, 1 - np.cos(a)])
    hom = k @ (r - np.outer(r @ c, [0, 0, 1.0])) @ np.linalg.inv(k)
    want = warp_frame(image, hom / hom[2, 2])
    inner = (slice(4, H - 4), slice(4, W - 4))
    assert np.abs(got[inner].astype(int) - want[inner]).mean() < 1.5


def test_chained_reference_view_and_identity():
    image, depth, _ = two_planes()
    scene = DepthScene.from_map(depth)
    ref = CameraState(truck=0.05)
    assert np.array_equal(depth_guide(image, depth, [ref, ref])[1], image)
    # Moving from a reference view to itself plus nothing changes nothing.
    same = warp_with_depth(image, scene, ref, ref)
    assert np.abs(same.astype(int) - image).mean() < 2


def test_focus_blurs_what_is_out_of_focus():
    _, depth, card = two_planes()
    image = (np.random.default_rng(5).random((H, W, 3)) * 255).astype(np.uint8)
    scene = DepthScene.from_map(depth)
    sharp_card = warp_with_depth(image, scene, CameraState(), CameraState(focus=NEAR, aperture=1))
    sharp_back = warp_with_depth(image, scene, CameraState(), CameraState(focus=FAR, aperture=1))

    def detail(img, box):
        return cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.CV_64F)[box].var()

    card_box, back_box = (slice(18, 30), slice(24, 40)), (slice(0, 10), slice(0, 64))
    assert detail(sharp_card, card_box) > 2 * detail(sharp_back, card_box)
    assert detail(sharp_back, back_box) > 2 * detail(sharp_card, back_box)


def test_mismatched_depth_size_is_a_clear_error():
    with pytest.raises(ValueError, match="resize the depth map"):
        warp_with_depth(texture(1), DepthScene.from_map(np.zeros((10, 10), np.float32)),
                        CameraState(), CameraState(truck=0.1))


def test_chained_segments_agree_with_one_long_move():
    """A chained segment starts from the previous one's last frame at its camera state: warping
    there and on must give what one warp from the start gives (up to resampling)."""
    image, depth, _ = two_planes()
    scene = DepthScene.from_map(depth)
    middle, end = CameraState(dolly=0.15, orbit=4.0), CameraState(dolly=0.3, orbit=8.0)
    direct = warp_with_depth(image, scene, CameraState(), end)
    via = warp_with_depth(warp_with_depth(image, scene, CameraState(), middle), scene, middle, end)
    diff = np.abs(direct.astype(int) - via)
    assert np.median(diff) <= 1 and diff.mean() < 4


def test_a_sloping_ground_is_one_surface_without_holes():
    """Depth changing smoothly (a ground plane) hides nothing from a small move: no inpainting."""
    ramp = np.repeat(np.linspace(0, 1, H)[:, None], W, axis=1).astype(np.float32)
    scene = DepthScene.from_map(ramp ** 2)
    for state in (CameraState(truck=0.05), CameraState(dolly=0.3), CameraState(pedestal=0.1)):
        holes: list = []
        warp_with_depth(texture(6), scene, CameraState(), state, holes)
        assert holes[0].mean() < 0.01, state

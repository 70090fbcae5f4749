"""Tests for stages.render.color_drift: the CIEDE2000 measure (colour-science, through
tests/helpers/color_metrics) against Sharma et al.'s published pairs, the
bit-exact ends of a matched segment, the Lab statistics it reaches, removal of an injected
drift, and a chained simulation where anchor matching keeps drift bounded."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from stages.render.color_drift import lab, lab_stats, match_segment
from tests.helpers.color_metrics import ciede2000, mean_delta_e
from tests.helpers.synthetic import texture

cv2.setNumThreads(1)

H, W = 48, 64

# (Lab 1, Lab 2, CIEDE2000) from Sharma, Wu and Dalal (2005), Table 1, pairs 1-4, 7-10, 17,
# 24-25, 34: chroma near zero, hue wrap-around at 0/360 and the blue-region rotation term.
SHARMA_PAIRS = [
    ((50.0000, 2.6772, -79.7751), (50.0000, 0.0000, -82.7485), 2.0425),
    ((50.0000, 3.1571, -77.2803), (50.0000, 0.0000, -82.7485), 2.8615),
    ((50.0000, 2.8361, -74.0200), (50.0000, 0.0000, -82.7485), 3.4412),
    ((50.0000, -1.3802, -84.2814), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, 0.0000, 0.0000), (50.0000, -1.0000, 2.0000), 2.3669),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0009), 7.1792),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0010), 7.1792),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0011), 7.2195),
    ((50.0000, 2.5000, 0.0000), (73.0000, 25.0000, -18.0000), 27.1492),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((63.0109, -31.0961, -5.8663), (62.8187, -29.7946, -4.0864), 1.2630),
    ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
]


def test_ciede2000_matches_sharma_pairs():
    lab1 = np.array([p[0] for p in SHARMA_PAIRS])
    lab2 = np.array([p[1] for p in SHARMA_PAIRS])
    expected = np.array([p[2] for p in SHARMA_PAIRS])
    np.testing.assert_allclose(ciede2000(lab1, lab2), expected, atol=1e-4)
    np.testing.assert_allclose(ciede2000(lab2, lab1), expected, atol=1e-4)  # symmetric
    assert ciede2000(lab1, lab1).max() == 0.0
    with pytest.raises(ValueError, match="last axis of 3"):
        ciede2000(lab1[:, :2], lab2[:, :2])


def shift_lab(image: np.ndarray, amount: float) -> np.ndarray:
    """A warm, more saturated cast growing with `amount` (1.0: a/b scaled 1.15, +4 a, +8 b,
    L -3): the kind of drift a long generated segment shows."""
    x = lab(image)
    x[..., 0] -= 3.0 * amount
    x[..., 1] = x[..., 1] * (1 + 0.15 * amount) + 4.0 * amount
    x[..., 2] = x[..., 2] * (1 + 0.15 * amount) + 8.0 * amount
    rgb = cv2.cvtColor(x, cv2.COLOR_Lab2RGB)
    return np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def anchor():
    """A colourful textured frame (not grey: a/b must have spread for the scale to matter), at
    half the texture's contrast so the injected casts rarely clip at 0/255 (clipping is the one
    part of a drift that no colour transfer can undo)."""
    rng = np.random.default_rng(3)
    img = (texture(rng, H + 32, W + 32).astype(np.float32) - 128) * 0.5 + 128
    img *= np.array([1.0, 0.8, 0.6], np.float32)  # tint: nonzero a/b means
    return np.clip(img, 0, 255).astype(np.uint8)


def crop(img):
    return np.ascontiguousarray(img[:H, :W])


def test_frame0_bit_exact_and_last_frame_reaches_reference_stats(anchor):
    ref = crop(anchor)
    seg = np.stack([shift_lab(ref, s) for s in np.linspace(0, 1.5, 9)])
    seg[0] = np.roll(ref, 1, axis=1)  # frame 0 differs from the reference, stays untouched
    out = match_segment(seg, ref)
    assert out.dtype == np.uint8 and out.shape == seg.shape
    np.testing.assert_array_equal(out[0], seg[0])
    m_out, s_out = lab_stats(out[-1])
    m_ref, s_ref = lab_stats(ref)
    np.testing.assert_allclose(m_out, m_ref, atol=1.0)
    np.testing.assert_allclose(s_out, s_ref, rtol=0.06, atol=0.5)
    # the correction grows over the segment: middle frames get part of it
    before = [mean_delta_e(f, ref) for f in seg[1:]]
    after = [mean_delta_e(f, ref) for f in out[1:]]
    assert after[-1] < 0.2 * before[-1], (before, after)


def test_injected_drift_is_removed(anchor):
    """A 17-frame segment drifting to a warm, saturated cast. Measured: mean CIEDE2000 to the
    anchor over the segment 6.1 before matching, 0.75 after; last frame 11.3 -> 0.98."""
    ref = crop(anchor)
    seg = np.stack([shift_lab(ref, s) for s in np.linspace(0, 2.0, 17)])
    out = match_segment(seg, ref)
    before = np.mean([mean_delta_e(f, ref) for f in seg])
    after = np.mean([mean_delta_e(f, ref) for f in out])
    last_before, last_after = mean_delta_e(seg[-1], ref), mean_delta_e(out[-1], ref)
    assert after < 0.25 * before, (before, after)
    assert last_after < 0.15 * last_before, (last_before, last_after)


def coarse(img: np.ndarray) -> np.ndarray:
    """8x8-pixel block means: colour drift is low-frequency, while the per-pixel rounding of
    each Lab round trip is a random walk that chaining re-renders anyway; block means keep the
    first and average out the second."""
    return cv2.resize(img, (W // 8, H // 8), interpolation=cv2.INTER_AREA)


def chain(anchor_img: np.ndarray, mode: str, segments: int = 10, frames: int = 9):
    """Each segment starts from the previous segment's stored last frame, pans over fresh
    content and adds the same colour shift on top of where it started. Returns the last
    frame's CIEDE2000 to the anchor (block means, see `coarse`) after each segment."""
    start = crop(anchor_img)
    errors = []
    for _ in range(segments):
        # the camera pans (content wraps round), the colours drift from where the segment began
        seg = [start]
        for t in range(1, frames):
            seg.append(shift_lab(np.roll(start, -2 * t, axis=1), t / (frames - 1)))
        seg = np.stack(seg)
        if mode == "anchor":
            seg = match_segment(seg, crop(anchor_img))
        elif mode == "previous":
            seg = match_segment(seg, seg[0])
        start = seg[-1]
        truth = np.roll(crop(anchor_img), -2 * (frames - 1) * (len(errors) + 1), axis=1)
        errors.append(mean_delta_e(coarse(start), coarse(truth)))
    return np.array(errors)


def test_chained_drift_stays_bounded_with_anchor(anchor):
    """10 chained segments, each adding the same cast on top of where it started. Measured
    last-frame CIEDE2000 to the anchor (block means) after segments 1/5/10: none 6.6/21.8/26.1
    (compounds), previous 0.28/0.64/0.96 (each transfer's small error is inherited), anchor
    0.28/0.40/0.55 (what is left is the clipping each cast causes, not a colour drift)."""
    none = chain(anchor, "none")
    anchored = chain(anchor, "anchor")
    previous = chain(anchor, "previous")
    assert np.all(anchored < none), (anchored, none)
    assert none[-1] > 3 * none[0]  # compounding drift without matching
    assert anchored.max() < 1.0, anchored
    assert anchored[-1] < 0.05 * none[-1]
    assert anchored[-1] < previous[-1] < none[-1], (anchored, previous, none)


def test_pin_end_keeps_both_ends_exact(anchor):
    ref = crop(anchor)
    seg = np.stack([shift_lab(ref, s) for s in np.sin(np.linspace(0, np.pi, 9)) * 1.5])
    seg[-1] = np.roll(ref, 3, axis=0)
    out = match_segment(seg, ref, pin_end=True)
    np.testing.assert_array_equal(out[0], seg[0])
    np.testing.assert_array_equal(out[-1], seg[-1])
    mid = len(seg) // 2
    assert mean_delta_e(out[mid], ref) < 0.2 * mean_delta_e(seg[mid], ref)


def test_strength_zero_and_single_frame_are_unchanged(anchor):
    ref = crop(anchor)
    seg = np.stack([shift_lab(ref, s) for s in np.linspace(0, 1, 5)])
    out = match_segment(seg, ref, strength=0.0)
    np.testing.assert_array_equal(out, seg)
    assert out is not seg
    np.testing.assert_array_equal(match_segment(seg[:1], ref), seg[:1])
    half = match_segment(seg, ref, strength=0.5)
    full = match_segment(seg, ref)
    assert mean_delta_e(full[-1], ref) < mean_delta_e(half[-1], ref) < mean_delta_e(seg[-1], ref)


def test_lab_shapes_and_bad_inputs(anchor):
    ref = crop(anchor)
    single = lab(ref)
    stack = lab(np.stack([ref, ref]))
    assert single.dtype == np.float32 and single.shape == ref.shape
    np.testing.assert_array_equal(stack[1], single)
    assert 0 <= single[..., 0].min() and single[..., 0].max() <= 100
    np.testing.assert_allclose(lab(np.full((1, 1, 3), 255, np.uint8))[0, 0], [100, 0, 0],
                               atol=0.01)
    with pytest.raises(ValueError, match=r"uint8 RGB of shape \(T, H, W, 3\).*\(48, 64, 3\)"):
        match_segment(ref, ref)
    with pytest.raises(ValueError, match="strength must be in"):
        match_segment(np.stack([ref, ref]), ref, strength=2.0)
    with pytest.raises(ValueError, match="one shape"):
        mean_delta_e(ref, ref[:10])

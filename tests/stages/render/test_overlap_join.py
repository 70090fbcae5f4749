"""Tests for stages.render.overlap_join: known answers on synthetic overlaps (identical renderings, a
brightness step, the classic offset seam on moving texture, unrelated noise), the falloff
curve, the trajectory model, the seam score and argument checks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from stages.render.overlap_join import (
    MIN_CONFIDENCE,
    PRESETS,
    OverlapParams,
    _trajectory,
    falloff_weights,
    join_overlap,
    seam_ratios,
    seam_score,
)
from tests.helpers.synthetic import texture

cv2.setNumThreads(1)

H, W, K = 96, 128, 16
PAD = 64


@pytest.fixture(scope="module")
def scene():
    """A textured plane; `at(dx, dy)` is the frame seeing it shifted by (dx, dy) px
    (sub-pixel shifts resampled bilinearly)."""
    big = texture(np.random.default_rng(7), H + 2 * PAD, W + 2 * PAD)

    def at(dx: float, dy: float = 0.0) -> np.ndarray:
        m = np.float32([[1, 0, -PAD - dx], [0, 1, -PAD - dy]])
        return cv2.warpAffine(big, m, (W, H), flags=cv2.INTER_LINEAR)

    return at


def plain_crossfade(tail, head, weights):
    return np.stack([cv2.addWeighted(a, 1 - w, b, w, 0.0) if 0 < w < 1 else (b if w >= 1 else a)
                     for a, b, w in zip(tail, head, weights)])


# --- known answers ---------------------------------------------------------------------------


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_identical_inputs_come_back_unchanged(scene, preset):
    clip = np.stack([scene(2.0 * j, 0.5 * j) for j in range(PRESETS[preset].overlap)])
    out, report = join_overlap(clip, clip.copy(), PRESETS[preset])
    assert out.dtype == np.uint8 and out.shape == clip.shape
    np.testing.assert_array_equal(out, clip)
    assert report.method == "motion" and report.warning is None


def test_brightness_step_ramps_from_tail_to_head(scene):
    still = scene(0.0)
    tail = np.stack([still] * K)
    head = np.stack([np.clip(still.astype(np.int16) + 40, 0, 255).astype(np.uint8)] * K)
    out, report = join_overlap(tail, head)
    means = out.reshape(K, -1).mean(axis=1)
    assert np.all(np.diff(means) >= -0.05), means
    assert means[-1] - means[0] > 30
    np.testing.assert_array_equal(out[0], tail[0])
    np.testing.assert_array_equal(out[-1], head[-1])
    # The brightness difference must not read as a motion failure (high-passed photometric
    # check), so the motion path ran.
    assert report.method == "motion" and report.confidence > MIN_CONFIDENCE


@pytest.mark.parametrize("motion_weight,max_ratio", [(None, 0.9), (1.0, 0.6)])
def test_offset_seam_ghosts_less_than_crossfade(scene, motion_weight, max_ratio):
    """The classic seam: the next segment renders the same moving texture 5 px right and 3 px
    down of where the previous one had it. The ideal join drifts from one to the other
    (offset·w_j); a crossfade shows two copies instead. Measured: default preset 5.2 vs 6.1
    grey levels mean error (-15%), motion_weight 1: 3.0 vs 6.1 (-51%)."""
    params = OverlapParams() if motion_weight is None else OverlapParams(motion_weight=1.0)
    v, off = 1.5, (5.0, 3.0)
    tail = np.stack([scene(v * j) for j in range(K)])
    head = np.stack([scene(v * j + off[0], off[1]) for j in range(K)])
    weights = falloff_weights(K, params)
    ideal = np.stack([scene(v * j + w * off[0], w * off[1]) for j, w in enumerate(weights)])
    out, report = join_overlap(tail, head, params)
    cross = plain_crossfade(tail, head, weights)
    err_motion = np.abs(out.astype(np.float64) - ideal).mean()
    err_cross = np.abs(cross.astype(np.float64) - ideal).mean()
    assert report.method == "motion" and report.confidence > 0.8, report
    assert err_motion < max_ratio * err_cross, (err_motion, err_cross)
    np.testing.assert_array_equal(out[0], tail[0])
    np.testing.assert_array_equal(out[-1], head[-1])


def test_unrelated_noise_falls_back_to_crossfade_with_warning():
    rng = np.random.default_rng(1)
    tail = rng.integers(0, 256, (K, 48, 64, 3), dtype=np.uint8)
    head = rng.integers(0, 256, (K, 48, 64, 3), dtype=np.uint8)
    out, report = join_overlap(tail, head)
    assert report.method == "crossfade"
    assert report.confidence < MIN_CONFIDENCE
    assert "crossfade" in report.warning and f"{MIN_CONFIDENCE:.2f}" in report.warning
    assert f"{report.confidence:.2f}" in report.warning
    np.testing.assert_array_equal(out, plain_crossfade(tail, head, falloff_weights(K)))


def test_hard_cut_and_zero_motion_weight(scene):
    tail = np.stack([scene(1.5 * j) for j in range(8)])
    head = np.stack([scene(1.5 * j + 4.0) for j in range(8)])
    cut, _ = join_overlap(tail, head, OverlapParams(blend=0.0))
    np.testing.assert_array_equal(cut, np.concatenate([tail[:4], head[4:]]))
    params = OverlapParams(motion_weight=0.0)
    out, report = join_overlap(tail, head, params)
    assert report.method == "crossfade" and report.warning is None
    np.testing.assert_array_equal(out, plain_crossfade(tail, head, falloff_weights(8, params)))


# --- falloff curve, trajectory model ---------------------------------------------------------


@pytest.mark.parametrize("params", [*PRESETS.values(), OverlapParams(blend=0.0),
                                    OverlapParams(blend=1.0, step_gain=0.0)])
def test_falloff_weights_monotonic_and_bounded(params):
    for k in range(1, 31):
        w = falloff_weights(k, params)
        assert w.shape == (k,)
        assert np.all((w >= 0) & (w <= 1))
        assert np.all(np.diff(w) >= 0)
        if k >= 2:
            assert w[0] < 1e-3 and w[-1] > 1 - 1e-3
    w = falloff_weights(16, params)
    if params.blend > 0:  # symmetric about the middle
        np.testing.assert_allclose(w + w[::-1], 1.0, atol=1e-12)


def test_falloff_window_and_hard_cut():
    w = falloff_weights(16, OverlapParams(blend=0.0))
    np.testing.assert_array_equal(w, [0] * 8 + [1] * 8)
    # blend 0.5: frames outside the centred half of the overlap are pure tail / pure head
    w = falloff_weights(21, OverlapParams(blend=0.5))
    assert np.all(w[:5] == 0) and np.all(w[-5:] == 1) and np.all((w[6:15] > 0) & (w[6:15] < 1))
    # a linear ramp when step_gain is 0 and the window spans the whole overlap
    np.testing.assert_allclose(falloff_weights(5, OverlapParams(blend=1.0, step_gain=0.0)),
                               [0, 0.25, 0.5, 0.75, 1])


def test_trajectory_predicts_unreliable_frames():
    """Displacement follows d(j) = (1 + 0.5 j + 0.05 j², -2 + 0.2 j); frames 6-8 were measured
    as garbage with zero confidence. The fit restores them from the other frames, and their
    carried confidence decays with the distance to the nearest measured frame."""
    k, h, w = 16, 4, 5
    j = np.arange(k, dtype=np.float32)
    true = np.stack([1 + 0.5 * j + 0.05 * j * j, -2 + 0.2 * j], axis=1)  # (K, 2)
    disp = np.broadcast_to(true[:, None, None, :], (k, h, w, 2)).copy()
    conf = np.full((k, h, w), 0.9, np.float32)
    disp[6:9] = 40.0
    conf[6:9] = 0.0
    used, carried = _trajectory(disp, conf)
    np.testing.assert_allclose(used[6:9], disp[6:9] * 0 + true[6:9, None, None, :], atol=0.05)
    np.testing.assert_allclose(used[:6], disp[:6], atol=0.05)
    decay = np.exp(-1 / 3)
    np.testing.assert_allclose(carried[6:9, 0, 0], [0.9 * decay, 0.9 * decay**2, 0.9 * decay],
                               rtol=1e-5)
    np.testing.assert_allclose(carried[:6], 0.9)


# --- seam score ------------------------------------------------------------------------------


def test_seam_score_smooth_vs_jump(scene):
    smooth = [scene(0.5 * i) for i in range(24)]
    assert seam_score(smooth, [12]) == pytest.approx(1.0, abs=0.1)
    jumped = smooth[:12] + [scene(0.5 * i + 20.0, 8.0) for i in range(12, 24)]
    score = seam_score(jumped, [12])
    assert score > 3.0, score
    assert seam_ratios(jumped, [5, 12])[0] == pytest.approx(1.0, abs=0.1)
    assert seam_score(np.stack(jumped), [5, 12]) == pytest.approx(score, rel=0.05)
    # a still sequence without a jump is 1, not 0/0
    assert seam_score([smooth[0]] * 6, [3]) == pytest.approx(1.0)


def test_overlap_join_lowers_the_seam_score(scene):
    """End to end on the offset seam: tail frames, K joined frames, the head's later frames.
    The last_frame-style hard cut scores far above the join."""
    v, off = 1.5, 6.0
    prev = [scene(v * j) for j in range(2 * K)]
    nxt = [scene(v * j + off) for j in range(K, 3 * K)]
    tail, head = np.stack(prev[K:]), np.stack(nxt[:K])
    joined, _ = join_overlap(tail, head)
    cut = prev + nxt[K:]
    seq = prev[:K] + list(joined) + nxt[K:]
    boundaries = list(range(K, 2 * K + 1))
    cut_score = seam_score(cut, [2 * K])
    join_score = seam_score(seq, boundaries)
    assert cut_score > 1.5 * join_score, (cut_score, join_score)


def test_seam_score_rejects_bad_boundaries():
    frames = [np.zeros((4, 4, 3), np.uint8)] * 5
    with pytest.raises(ValueError, match="outside 1..4"):
        seam_score(frames, [0])
    with pytest.raises(ValueError, match="at least one boundary"):
        seam_score(frames, [])
    with pytest.raises(ValueError, match="no frame step"):
        seam_score(frames[:2], [1])


# --- argument checks -------------------------------------------------------------------------


def test_bad_inputs_raise_naming_the_shapes():
    a = np.zeros((4, 48, 64, 3), np.uint8)
    with pytest.raises(ValueError, match=r"\(4, 48, 64, 3\).*\(4, 48, 60, 3\)"):
        join_overlap(a, np.zeros((4, 48, 60, 3), np.uint8))
    with pytest.raises(ValueError, match=r"\(4, 48, 64, 3\).*\(3, 48, 64, 3\)"):
        join_overlap(a, a[:3])
    with pytest.raises(ValueError, match=r"at least one frame.*\(0, 48, 64, 3\)"):
        join_overlap(a[:0], a[:0])
    with pytest.raises(ValueError, match="uint8.*float32"):
        join_overlap(a.astype(np.float32), a)
    with pytest.raises(ValueError, match="overlap length"):
        falloff_weights(0)
    with pytest.raises(ValueError, match="overlap must be"):
        OverlapParams(overlap=0)
    with pytest.raises(ValueError, match="blend must be"):
        OverlapParams(blend=1.5)
    with pytest.raises(ValueError, match="mask_sigma"):
        OverlapParams(mask_sigma=0)

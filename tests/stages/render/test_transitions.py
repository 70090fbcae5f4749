"""stages.render.transitions: crossfade blending and frame counts."""

from __future__ import annotations

import numpy as np
import pytest

from stages.render.transitions import crossfade, crossfade_frames


def _const(value: int, shape=(4, 6, 3)) -> np.ndarray:
    return np.full(shape, value, np.uint8)


def test_crossfade_weights_exclude_endpoints():
    k = 3
    out = crossfade([_const(0)] * k, [_const(200)] * k)
    assert len(out) == k
    # head weight 1/4, 2/4, 3/4 -> 50, 100, 150
    assert [int(f[0, 0, 0]) for f in out] == [50, 100, 150]
    assert all(f.dtype == np.uint8 and f.shape == (4, 6, 3) for f in out)


def test_crossfade_single_frame_is_midpoint_and_rounds():
    out = crossfade([_const(0)], [_const(255)])
    assert int(out[0][0, 0, 0]) == 128  # 127.5 rounds to even in rint -> 128
    out = crossfade([_const(10)], [_const(13)])
    assert int(out[0][0, 0, 0]) == 12  # 11.5 -> 12


def test_crossfade_is_monotonic_between_sources():
    rng = np.random.default_rng(0)
    tail = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(5)]
    head = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(5)]
    out = crossfade(tail, head)
    for i, (a, b, o) in enumerate(zip(tail, head, out)):
        w = (i + 1) / 6
        expected = np.rint(a.astype(np.float64) * (1 - w) + b.astype(np.float64) * w)
        assert np.max(np.abs(o.astype(np.float64) - expected)) <= 1
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        assert np.all(o >= lo) and np.all(o <= hi)


def test_crossfade_length_mismatch_and_shape_mismatch():
    with pytest.raises(ValueError, match="2 tail and 3 head"):
        crossfade([_const(0)] * 2, [_const(0)] * 3)
    with pytest.raises(ValueError, match="shape"):
        crossfade([_const(0)], [_const(0, (4, 5, 3))])
    assert crossfade([], []) == []


def test_crossfade_frames():
    assert crossfade_frames(0.5, 16) == 8
    assert crossfade_frames(0.5, 5) == 3  # 2.5 rounds up
    assert crossfade_frames(0.01, 16) == 1  # clipped to at least one frame
    assert crossfade_frames(0, 16) == 1
    assert crossfade_frames(1.0, 23.976) == 24
    with pytest.raises(ValueError):
        crossfade_frames(-1, 16)
    with pytest.raises(ValueError):
        crossfade_frames(1, 0)

"""stages.outputs.contact_sheet: layout, labels, sampling."""

from __future__ import annotations

import numpy as np
import pytest

from stages.outputs.contact_sheet import contact_sheet, sample_indices


def _frames(n: int, h: int = 48, w: int = 80, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def test_sample_indices():
    assert sample_indices(81, 6) == [0, 16, 32, 48, 64, 80]
    assert sample_indices(10, 3) == [0, 5, 9]  # 4.5 rounds up
    assert sample_indices(4, 6) == [0, 1, 2, 3]
    assert sample_indices(7, 1) == [0]
    assert sample_indices(0, 6) == []
    for n in range(1, 40):
        for c in range(1, 10):
            idx = sample_indices(n, c)
            assert len(idx) == min(n, c)
            assert idx == sorted(set(idx)) and idx[0] == 0
            if c > 1:
                assert idx[-1] == n - 1


def test_sheet_shape_and_dtype():
    rows = [("s01", _frames(6)), ("s02", _frames(6, seed=1)), ("s03", _frames(3, seed=2))]
    sheet = contact_sheet(rows, thumb_width=64, columns=6)
    assert sheet.dtype == np.uint8 and sheet.ndim == 3 and sheet.shape[2] == 3
    thumb_h = round(64 * 48 / 80)  # aspect preserved: 38
    assert len(rows) * thumb_h <= sheet.shape[0] <= len(rows) * (thumb_h + 12) + 12
    assert sheet.shape[1] >= 6 * 64 + 64
    # background is dark
    assert sheet[0, 0].max() < 60 and sheet[-1, -1].max() < 60


def test_thumbnails_are_resized_frames():
    frame = np.zeros((40, 80, 3), np.uint8)
    frame[:, :40] = (255, 0, 0)
    frame[:, 40:] = (0, 0, 255)
    sheet = contact_sheet([("s01", [frame])], thumb_width=40, columns=2)
    reds = np.argwhere((sheet[:, :, 0] > 200) & (sheet[:, :, 2] < 50))
    blues = np.argwhere((sheet[:, :, 2] > 200) & (sheet[:, :, 0] < 50))
    assert len(reds) and len(blues)
    assert reds[:, 1].max() < blues[:, 1].min()  # left half red, right half blue
    assert reds[:, 0].max() - reds[:, 0].min() + 1 == 20  # 40x80 -> 20x40


def test_label_is_drawn():
    frames = _frames(2)
    a = contact_sheet([("s01", frames)], thumb_width=64, columns=2)
    b = contact_sheet([("s99_other", frames)], thumb_width=64, columns=2)
    blank = contact_sheet([("", frames)], thumb_width=64, columns=2)
    assert a.shape == b.shape == blank.shape
    assert np.any(a != b)
    label_cell = a[:, :64]
    assert np.any(label_cell != blank[:, :64])
    # thumbnails identical regardless of the label
    np.testing.assert_array_equal(a[:, 80:], b[:, 80:])


def test_more_frames_than_columns_are_sampled():
    frames = [np.full((20, 40, 3), v, np.uint8) for v in range(0, 200, 10)]  # 20 frames
    sheet = contact_sheet([("s01", frames)], thumb_width=40, columns=3)
    cols = 3
    assert sheet.shape[1] == 4 + 64 + cols * (4 + 40) + 4
    # first and last frames are present
    values = set(np.unique(sheet[:, 64 + 8:, 0]).tolist())
    assert 0 in values and 190 in values


def test_mixed_aspect_rows_and_empty_row():
    rows = [("wide", _frames(2, 20, 80)), ("tall", _frames(2, 80, 40)), ("none", [])]
    sheet = contact_sheet(rows, thumb_width=40, columns=2)
    assert sheet.shape[0] >= 10 + 80 + 4  # the tall row keeps its aspect (80x40 -> 80x40)


def test_bad_arguments():
    with pytest.raises(ValueError):
        contact_sheet([("s", _frames(1))], columns=0)
    with pytest.raises(ValueError):
        contact_sheet([("s", [np.zeros((4, 4, 3), np.float32)])])

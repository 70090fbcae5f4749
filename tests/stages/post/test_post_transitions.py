"""The `interpolated` shot transition: a flow-based morph over the frames a crossfade blends."""

from __future__ import annotations

import numpy as np
import pytest

from stages.render.assemble import join
from stages.storyboard.schema import Transition
from stages.render.transitions import TRANSITIONS, morph, morph_pair
from tests.helpers.post_media import panning, panning_at, psnr


def test_morph_moves_content_where_a_crossfade_doubles_it():
    # The next shot's first frame is the same set seen 6 px further along: a morph slides.
    a, b = panning_at(0, dx=6, dy=0, h=96, w=128), panning_at(1, dx=6, dy=0, h=96, w=128)
    for t in (0.25, 0.5, 0.75):
        truth = panning_at(t, dx=6, dy=0, h=96, w=128)
        blend = ((1 - t) * a + t * b).round().astype(np.uint8)  # what a crossfade shows
        assert psnr(morph_pair(a, b, t), truth) > psnr(blend, truth) + 4, t


def test_morph_uses_crossfade_weights_and_checks_lengths():
    tail, head = panning(3, seed=0), panning(3, seed=1)
    out = morph(tail, head)
    assert len(out) == 3 and all(f.shape == tail[0].shape for f in out)
    with pytest.raises(ValueError, match="as many head frames"):
        morph(tail, head[:2])


def test_join_mixes_by_transition_kind():
    a, b = panning(6, seed=0), panning(6, seed=1)
    plain = list(join([iter(a), iter(b)], [2]))
    morphed = list(join([iter(a), iter(b)], [2], ["interpolated"]))
    assert len(plain) == len(morphed) == 10
    assert all(np.array_equal(x, y) for x, y in zip(plain[:4] + plain[6:], morphed[:4] + morphed[6:]))
    assert not np.array_equal(plain[4], morphed[4])
    assert set(TRANSITIONS) == {"crossfade", "interpolated"}
    assert Transition.model_validate({"type": "interpolated", "duration": "0.5s"}).duration == 0.5

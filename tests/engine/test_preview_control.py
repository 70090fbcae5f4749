"""The preview engine shows a control video: each frame blended with its control frame by the
strength (engine.preview.control), deterministically; no control, the same pixels as before."""

from __future__ import annotations

import numpy as np
import pytest

from engine.base import EngineError, GenerationRequest
from engine.preview import PreviewEngine


def request(**kw) -> GenerationRequest:
    base = dict(prompt="a dancer", width=64, height=48, num_frames=9, fps=8, seed=4)
    base.update(kw)
    return GenerationRequest(**base)


def test_control_is_blended_by_strength():
    engine = PreviewEngine()
    control = np.zeros((9, 48, 64, 3), np.uint8)
    control[:, :, 32:] = 255
    plain = engine.generate(request()).astype(int)
    full = engine.generate(request(control_video=control, control_strength=1.0))
    assert np.array_equal(full, control)
    half = engine.generate(request(control_video=control, control_strength=0.5)).astype(int)
    assert np.abs(half - (plain + control.astype(int)) / 2).max() <= 1
    assert np.array_equal(engine.generate(request(control_video=control,
                                                  control_strength=0.0)), plain)
    assert np.array_equal(half, engine.generate(request(control_video=control,
                                                        control_strength=0.5)))


def test_bad_control_is_refused():
    engine = PreviewEngine()
    with pytest.raises(EngineError, match="expected uint8 \\(9, 48, 64, 3\\)"):
        engine.generate(request(control_video=np.zeros((5, 48, 64, 3), np.uint8)))
    with pytest.raises(EngineError, match="control_strength"):
        engine.generate(request(control_video=np.zeros((9, 48, 64, 3), np.uint8),
                                control_strength=2.0))

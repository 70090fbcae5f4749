"""Falling back adapts the mode (animate / v2v -> i2v from the right frame, t2v -> i2v from a
generated keyframe), retimes fewer frames by motion interpolation, and validation names the
shots a configured fallback could not take."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from engine.base import EngineError, EngineLoadError, GenerationRequest
from engine.registry import engine_spec, get_engine
from stages.post.retime.resample import BlendSynth
from stages.render.generate import generate_frames, retime


class Broken:
    """A render engine whose weights do not load."""

    def __init__(self, name: str):
        self.spec = engine_spec(name)

    def generate(self, request, progress=None):
        raise EngineLoadError("weights missing")

    def identity(self):
        return {"engine": self.spec.name}


def i2v_fallback(max_frames: int = 81):
    """The preview engine restricted to i2v (as svd), recording the requests it gets."""
    engine = get_engine("preview")
    engine.spec = replace(engine.spec, name="svd_like", modes=frozenset({"i2v"}),
                          max_frames=max_frames)
    seen: list[GenerationRequest] = []
    generate = engine.generate

    def spy(request, progress=None):
        seen.append(request)
        return generate(request, progress)

    engine.generate = spy
    return engine, seen


def req(**kw) -> GenerationRequest:
    base = dict(prompt="x", width=64, height=48, num_frames=9, fps=16, seed=1)
    base.update(kw)
    return GenerationRequest(**base)


def test_animate_falls_back_to_i2v_from_the_reference():
    reference = np.full((48, 64, 3), 210, np.uint8)
    driving = np.zeros((9, 48, 64, 3), np.uint8)
    fallback, seen = i2v_fallback()
    frames, record = generate_frames(req(start_image=reference, driving_video=driving),
                                     Broken("wan_animate"), fallback)
    assert frames.shape == (9, 48, 64, 3) and record.engine == "svd_like"
    assert seen[0].mode == "i2v" and np.array_equal(seen[0].start_image, reference)
    assert "animate -> i2v" in record.adapted


def test_v2v_falls_back_to_i2v_from_the_source_frame():
    source = np.stack([np.full((48, 64, 3), 10 * i, np.uint8) for i in range(9)])
    fallback, seen = i2v_fallback()
    _, record = generate_frames(req(source_video=source), Broken("wan_v2v"), fallback)
    assert seen[0].mode == "i2v" and np.array_equal(seen[0].start_image, source[0])
    assert "v2v -> i2v" in record.adapted


def test_t2v_falls_back_from_a_generated_keyframe_or_not_at_all():
    stills = get_engine("preview")  # makes t2i stills
    fallback, seen = i2v_fallback()
    _, record = generate_frames(req(), Broken("wan21_t2v"), fallback, stills=stills)
    assert seen[0].mode == "i2v" and seen[0].start_image.shape == (48, 64, 3)
    assert "generated keyframe" in record.adapted
    with pytest.raises(EngineError, match="no keyframe engine"):
        generate_frames(req(), Broken("wan21_t2v"), i2v_fallback()[0])


def test_fewer_fallback_frames_are_retimed_and_flagged():
    fallback, seen = i2v_fallback(max_frames=5)
    frames, record = generate_frames(req(start_image=np.zeros((48, 64, 3), np.uint8),
                                         num_frames=13), Broken("wan21_i2v"), fallback)
    assert seen[0].num_frames == 5 and frames.shape[0] == 13
    assert record.retimed == (5, 13) and record.as_dict()["retimed"] == [5, 13]
    assert "motion interpolation" in record.adapted


def moving_square(n: int, step: int) -> np.ndarray:
    from tests.helpers.synthetic import texture

    patch = texture(np.random.default_rng(2), 24, 24)
    frames = []
    for i in range(n):
        f = np.zeros((64, 96, 3), np.uint8)
        x = 8 + step * i
        f[20:44, x:x + 24] = patch
        frames.append(f)
    return np.stack(frames)


def test_retime_moves_the_pattern_instead_of_cross_fading():
    coarse = moving_square(3, 16)  # the square at x = 8, 24, 40
    truth = moving_square(5, 8)  # ... and at x = 16, 32 in between
    flow = retime(coarse, 5)
    blend = retime(coarse, 5, BlendSynth())
    assert flow.shape == truth.shape
    assert np.array_equal(flow[0], coarse[0]) and np.array_equal(flow[-1], coarse[-1])
    err = lambda got: float(np.abs(got[1].astype(float) - truth[1]).mean())
    assert err(flow) < 0.5 * err(blend)


def test_validation_names_the_shots_a_fallback_cannot_take(tmp_path):
    from stages.storyboard.validate import ValidateOptions, validate_storyboard

    path = tmp_path / "sb.yaml"
    path.write_text("fallback: svd\nshots:\n  - {id: a, prompt: x, duration: 1s}\n"
                    "  - {id: b, prompt: y, duration: 1s}\n")
    warnings = validate_storyboard(path, engine_spec("wan21_t2v"), ValidateOptions()).warnings
    said = [w for w in warnings if "svd" in w]
    assert len(said) == 1 and "shots a, b" in said[0] and "cannot do t2v" in said[0]
    with_stills = ValidateOptions(keyframes_engine="preview")
    assert not [w for w in validate_storyboard(path, engine_spec("wan21_t2v"), with_stills)
                .warnings if "cannot do" in w]


def test_validation_warns_that_a_fallback_without_control_drops_it(tmp_path):
    from stages.storyboard.validate import ValidateOptions, validate_storyboard
    from tests.helpers.control_clips import write_square_clip

    write_square_clip(tmp_path / "clip.mp4")
    path = tmp_path / "sb.yaml"
    path.write_text("fallback: svd\nfps: 8\nshots:\n  - {id: a, prompt: x, frames: 9,\n"
                    "     control: {video: clip.mp4, kind: gray}}\n"
                    "  - {id: b, prompt: y, frames: 9}\n")
    warnings = validate_storyboard(path, engine_spec("preview"), ValidateOptions()).warnings
    said = [w for w in warnings if "control" in w]
    assert len(said) == 1 and "shots a:" in said[0] and "'svd'" in said[0], warnings


def mode_limited(name: str, modes: set[str]):
    """The preview engine with fewer modes: it raises EngineModeError for the others."""
    engine = get_engine("preview")
    engine.spec = replace(engine.spec, name=name, modes=frozenset(modes))
    return engine


def test_a_mode_the_render_engine_cannot_take_goes_to_the_fallback():
    from engine.base import EngineModeError

    reference = np.full((48, 64, 3), 90, np.uint8)
    request = req(start_image=reference, driving_video=np.zeros((9, 48, 64, 3), np.uint8))
    primary = mode_limited("t2v_only", {"t2v"})
    with pytest.raises(EngineModeError, match="cannot do animate"):
        primary.generate(request)  # what the engine itself says
    fallback, seen = i2v_fallback()
    frames, record = generate_frames(request, primary, fallback)
    assert frames.shape == (9, 48, 64, 3) and record.engine == "svd_like"
    assert "EngineModeError" in record.fallback_reason and "animate -> i2v" in record.adapted
    assert seen[0].mode == "i2v" and np.array_equal(seen[0].start_image, reference)
    # Without a fallback, or when the fallback cannot take it even adapted, the error stands.
    with pytest.raises(EngineModeError):
        generate_frames(request, primary, None)
    with pytest.raises(EngineError, match="fallback engine 't2v_too' cannot do animate"):
        generate_frames(request, primary, mode_limited("t2v_too", {"t2v"}))


def test_other_bad_requests_never_fall_back():
    fallback, seen = i2v_fallback()
    with pytest.raises(EngineError, match="seed"):
        generate_frames(req(seed=True), mode_limited("i2v_t2v", {"t2v", "i2v"}), fallback)
    assert seen == []

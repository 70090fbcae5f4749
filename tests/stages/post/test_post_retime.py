"""interpolate / slowmo: exact output timing (factor and target fps), methods against a plain
blend on ground truth, frame counts predicted for every preset, and parameter checks."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from flows.config.settings import post_presets
from stages.post.chain import (
    chain_fps,
    chain_frames_out,
    chain_size,
    parse_stage,
    resolve_post_chain,
    run_post_chain,
)
from stages.post.retime.resample import retimed_count, step_for
from tests.helpers.post_media import panning, panning_at, psnr


def run(frames, chain, fps=16.0):
    out, out_fps = run_post_chain(iter(frames), fps, resolve_post_chain(chain, {}))
    return list(out), out_fps


def test_exact_steps_and_counts():
    assert step_for(24, 60) == Fraction(2, 5)
    assert step_for(24000 / 1001, 60000 / 1001) == Fraction(2, 5)
    assert [retimed_count(n, Fraction(2, 5)) for n in (0, 1, 2, 11)] == [0, 1, 3, 26]
    assert retimed_count(17, Fraction(1, 4)) == 65


def test_24_to_60_fps_lands_every_frame_at_its_time():
    # A pan of 5 px per source frame: at step 0.4 every output position is a whole pixel.
    frames = panning(7, dx=5, dy=0)
    out, fps = run(frames, [{"stage": "interpolate", "fps": 60}], fps=24)
    assert fps == 60 and len(out) == retimed_count(7, Fraction(2, 5)) == 16
    for j, frame in enumerate(out):
        pos = j * 0.4
        truth = panning_at(pos, dx=5, dy=0)
        if pos.is_integer():
            assert np.array_equal(frame, frames[int(pos)])
        else:
            i = int(pos)
            blend = ((1 - (pos - i)) * frames[i] + (pos - i) * frames[i + 1]).round()
            assert psnr(frame, truth) > psnr(blend.astype(np.uint8), truth) + 5


@pytest.mark.parametrize("method", ["flow", "minterpolate"])
def test_interpolated_frames_beat_a_blend(method):
    # Ground truth: render at 2x the rate, drop every other frame, reconstruct the dropped ones.
    truth = panning(9, dx=2, dy=1)  # positions 0, 0.5, 1, ... of a 4 px / 2 px per frame pan
    kept = truth[::2]
    out, fps = run(kept, [{"stage": "interpolate", "factor": 2, "method": method}])
    blend, _ = run(kept, [{"stage": "interpolate", "factor": 2, "method": "blend"}])
    assert fps == 32 and len(out) == len(truth) == len(blend)
    mids = range(1, len(truth), 2)
    method_db = np.mean([psnr(out[i], truth[i]) for i in mids])
    blend_db = np.mean([psnr(blend[i], truth[i]) for i in mids])
    assert method_db > blend_db + 3, (method, method_db, blend_db)
    assert all(np.array_equal(out[i], truth[i]) for i in range(0, len(truth), 2))


def test_slowmo_keeps_the_fps():
    frames = panning(5)
    out, fps = run(frames, [{"stage": "slowmo", "factor": 3}])
    assert fps == 16 and len(out) == 13
    assert np.array_equal(out[3], frames[1])


@pytest.mark.parametrize("preset", sorted(post_presets()))
@pytest.mark.parametrize("n", [1, 2, 9])
def test_every_preset_predicts_its_frames_fps_and_size(preset, n):
    steps = resolve_post_chain([preset], post_presets())
    frames = panning(n, h=24, w=32)
    out, fps = run_post_chain(iter(frames), 16, steps)
    out = list(out)
    assert len(out) == chain_frames_out(steps, n, 16)
    assert fps == chain_fps(steps, 16)
    if out:
        assert (out[0].shape[1], out[0].shape[0]) == chain_size(steps, 32, 24)


@pytest.mark.parametrize("item, message", [
    ({"stage": "interpolate", "factor": 2, "fps": 60}, "not both"),
    ({"stage": "interpolate", "factor": 3}, "factor"),
    ({"stage": "interpolate", "method": "rife"}, "needs model"),
    ({"stage": "interpolate", "model": "x.pkl"}, "model applies to method: rife"),
    ({"stage": "interpolate", "method": "rife", "model": "missing.pkl"}, "not found"),
    ({"stage": "slowmo", "factor": 1}, "factor"),
])
def test_bad_interpolation_parameters(item, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        parse_stage(item, tmp_path)


def test_target_fps_needs_the_input_fps_to_plan():
    steps = resolve_post_chain([{"stage": "interpolate", "fps": 60}], {})
    assert chain_frames_out(steps, 11, 24) == 26
    with pytest.raises(ValueError, match="input fps"):
        chain_frames_out(steps, 11)


@pytest.mark.parametrize("n", [1, 2, 4])
@pytest.mark.parametrize("target", [{"factor": 4}, {"fps": 40}])
def test_minterpolate_gives_the_planned_frames(n, target):
    frames = panning(n)
    steps = resolve_post_chain([{"stage": "interpolate", "method": "minterpolate", **target}], {})
    out = list(run_post_chain(iter(frames), 16, steps)[0])
    assert len(out) == chain_frames_out(steps, n, 16)
    step = steps[0].params.step(16)
    for j, frame in enumerate(out):  # output positions on a source frame are that frame
        if (j * step).denominator == 1:
            assert np.array_equal(frame, frames[int(j * step)])

"""Post stages on synthetic media with known answers: scene cuts, smoothing, deflicker, colour
match, loops and Lanczos upscaling (LUTs: test_post_lut.py; frame rates: test_post_retime.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from stages.post.color import to_lab
from stages.post.chain import parse_stage, resolve_post_chain, run_post_chain, run_post_frames
from stages.post.scene_detect import cut_list, frame_scores
from stages.post.stream import as_post_frames
from tests.helpers.post_media import H, W, disc_box, moving_disc, noisy, panning, psnr

cv2.setNumThreads(1)


def run(frames, chain, fps=16.0):
    out, out_fps = run_post_chain(iter(frames), fps, resolve_post_chain(chain, {}))
    return list(out), out_fps


# --- scene_detect ----------------------------------------------------------------------------


def test_cut_between_scenes_of_the_same_palette_is_found():
    # Two textures drawn from the same distribution: the histograms match, the layout does not.
    frames = panning(6, seed=0) + panning(5, seed=1)
    assert cut_list(frames) == [6]


def test_cut_to_another_colour_is_found_and_pans_are_not_cuts():
    warm = [np.clip(f.astype(int) + (60, 0, -60), 0, 255).astype(np.uint8)
            for f in panning(4, seed=2, dx=6, dy=3)]  # a fast pan: 6 px/frame on 64 px
    cold = [np.clip(f.astype(int) + (-60, 0, 60), 0, 255).astype(np.uint8)
            for f in panning(4, seed=2, dx=6, dy=3)]
    assert cut_list(warm + cold) == [4]
    scores = list(frame_scores(panning(8, dx=6, dy=3)))
    assert max(scores) < 0.2, scores


def test_threshold_is_checked():
    with pytest.raises(ValueError, match="threshold"):
        parse_stage({"stage": "scene_detect", "threshold": 0.9})
    frames = panning(3, seed=0) + panning(3, seed=1)
    assert cut_list(frames, threshold=0.7) == [3]


# --- a cut is never blended across --------------------------------------------------------------


@pytest.mark.parametrize("interp", [
    {"stage": "interpolate", "factor": 4},
    {"stage": "interpolate", "fps": 40},
    {"stage": "interpolate", "factor": 2, "method": "minterpolate"},
    {"stage": "slowmo", "factor": 3, "method": "blend"},
])
def test_no_frame_mixes_two_scenes(interp):
    a, b = panning(1, seed=0)[0], panning(1, seed=1)[0]
    frames = [a] * 5 + [b] * 5  # static scenes: every correct output frame is exactly a or b
    chain = [{"stage": "scene_detect"}, {"stage": "smooth", "strength": 1.0, "window": 7},
             {"stage": "deflicker", "window": 5}, interp]
    out, _ = run(frames, chain)
    err_a = [int(np.abs(f.astype(int) - a).max()) for f in out]
    err_b = [int(np.abs(f.astype(int) - b).max()) for f in out]
    # Frames synthesised between two equal frames are that frame, give or take rounding (ffmpeg's
    # minterpolate works in YUV: up to 2 levels); a blend of the two scenes is off by 20+.
    tol = 3
    assert all(min(ea, eb) <= tol for ea, eb in zip(err_a, err_b)), list(zip(err_a, err_b))
    firsts = [i for i, e in enumerate(err_b) if e <= tol]
    assert firsts == list(range(firsts[0], len(out)))  # all of a, then all of b

    # Without the cut list the same chain blends the scenes into each other.
    mixed, _ = run(frames, chain[1:])
    worst = max(min(int(np.abs(f.astype(int) - a).max()), int(np.abs(f.astype(int) - b).max()))
                for f in mixed)
    assert worst > 20


def test_cut_marks_travel_through_the_chain():
    frames = panning(4, seed=0) + panning(4, seed=1)
    steps = resolve_post_chain([{"stage": "scene_detect"}, {"stage": "upscale", "factor": 2},
                                {"stage": "interpolate", "factor": 2}], {})
    out, _ = run_post_frames(as_post_frames(frames), 16, steps)
    cuts = [i for i, f in enumerate(out) if f.cut]
    # Input frame 4 starts scene two; at 2x it sits at output 8; the held frame at position 3.5
    # already shows scene two, so the mark lands on output 7.
    assert cuts == [7]


# --- smooth ----------------------------------------------------------------------------------


def test_smoothing_reduces_noise_on_a_static_scene():
    clean = panning(1)[0]
    frames = noisy([clean] * 9, sigma=8)
    out, _ = run(frames, [{"stage": "smooth", "strength": 1.0, "window": 5}])
    before = np.mean([np.std(f.astype(float) - clean) for f in frames])
    after = np.mean([np.std(f.astype(float) - clean) for f in out[2:-2]])
    assert after < 0.65 * before, (before, after)


def test_smoothing_does_not_ghost_a_moving_object():
    # 128x96: optical flow needs a disc of a few of its 8x8 patches to follow it.
    size, h, w = 32, 96, 128
    clean = moving_disc(range(9), d=(4, 2), size=size, h=h, w=w)
    frames = noisy(clean, sigma=6)
    out, _ = run(frames, [{"stage": "smooth", "strength": 1.0, "window": 5}])
    inner = range(2, 7)
    disc = [disc_box(i, size=size, h=h, w=w) for i in inner]

    def region_db(images, masks):
        return np.mean([psnr(images[i][m], clean[i][m]) for i, m in zip(inner, masks)])

    noisy_db, smooth_db = region_db(frames, disc), region_db(out, disc)
    # The moving disc comes out cleaner than it went in (a ghost or smear would cost
    # several dB there), and the background much cleaner.
    assert smooth_db > noisy_db + 0.8, (noisy_db, smooth_db)
    # Without motion compensation the disc cannot be averaged with itself: it gains nothing.
    plain, _ = run(frames, [{"stage": "smooth", "strength": 1.0, "window": 5, "motion": False}])
    assert smooth_db > region_db(plain, disc) + 0.8
    rest = [~m for m in disc]
    assert region_db(out, rest) > region_db(frames, rest) + 4.0


def test_smooth_strength_zero_is_identity_and_params_are_checked():
    frames = noisy(panning(4), sigma=5)
    out, _ = run(frames, [{"stage": "smooth", "strength": 0.0}])
    assert all(np.array_equal(a, b) for a, b in zip(out, frames))
    with pytest.raises(ValueError, match="window"):
        parse_stage({"stage": "smooth", "window": 4})


# --- deflicker -------------------------------------------------------------------------------


def _luma(frames):
    return np.array([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).mean() for f in frames])


def test_deflicker_evens_out_brightness_but_keeps_a_fade():
    base = panning(1)[0].astype(np.float32)
    rng = np.random.default_rng(1)
    fade = np.linspace(0.7, 1.0, 16)  # a slow fade-in ...
    pump = 1 + rng.uniform(-0.12, 0.12, 16)  # ... with frame-to-frame brightness pumping
    frames = [np.clip(base * f * p, 0, 255).astype(np.uint8) for f, p in zip(fade, pump)]
    out, _ = run(frames, [{"stage": "deflicker", "window": 7}])
    jitter_in = np.std(np.diff(_luma(frames), 2))
    jitter_out = np.std(np.diff(_luma(out), 2))
    assert jitter_out < 0.4 * jitter_in, (jitter_in, jitter_out)
    assert _luma(out)[-3:].mean() > _luma(out)[:3].mean() + 15  # the fade is still there
    with pytest.raises(ValueError, match="odd"):
        parse_stage({"stage": "deflicker", "window": 6})


# --- colour ----------------------------------------------------------------------------------


def _delta_e(a, b) -> float:
    return float(np.mean(np.linalg.norm(to_lab(a) - to_lab(b), axis=-1)))


def test_colour_match_removes_an_injected_shift(tmp_path):
    clean = panning(6)
    ref = tmp_path / "ref.png"
    cv2.imwrite(str(ref), cv2.cvtColor(clean[0], cv2.COLOR_RGB2BGR))
    shifted = [np.clip(f.astype(int) + (28, 6, -22), 0, 255).astype(np.uint8) for f in clean]
    out, _ = run(shifted, [{"stage": "color", "reference": str(ref), "window": 3}])
    before = np.mean([_delta_e(s, c) for s, c in zip(shifted, clean)])
    after = np.mean([_delta_e(o, c) for o, c in zip(out, clean)])
    assert after < 0.35 * before, (before, after)
    half, _ = run(shifted, [{"stage": "color", "reference": str(ref), "strength": 0.5}])
    mid = np.mean([_delta_e(o, c) for o, c in zip(half, clean)])
    assert after < mid < before


def test_colour_needs_a_reference_or_a_lut(tmp_path):
    with pytest.raises(ValueError, match="reference"):
        parse_stage({"stage": "color"})
    with pytest.raises(ValueError, match="not found"):
        parse_stage({"stage": "color", "reference": "missing.png"}, tmp_path)


# --- loop ------------------------------------------------------------------------------------


@pytest.mark.parametrize("join", [0, 2])
def test_pingpong_ends_on_its_first_frame(join):
    frames = panning(7)
    out, _ = run(frames, [{"stage": "loop", "mode": "pingpong", "join": join}])
    assert len(out) == 2 * 7 - 1 + 2 * join
    assert np.array_equal(out[-1], out[0]) and np.array_equal(out[0], frames[0])
    assert np.array_equal(out[6 + join], frames[6])  # the turn's middle is the last frame
    assert all(np.array_equal(out[-1 - k], frames[k]) for k in range(6))  # then backwards
    if join:
        # The turn slows down: the frames just before the apex move less than a whole frame.
        assert psnr(out[5 + join], frames[6]) > psnr(frames[5], frames[6])


def test_crossfade_loop_wraps_seamlessly():
    frames = panning(16)
    out, _ = run(frames, [{"stage": "loop", "mode": "crossfade", "overlap": 4}])
    assert len(out) == 12
    assert np.array_equal(out[0], frames[4])
    seam = np.abs(out[-1].astype(int) - out[0]).mean()  # playback wraps from out[-1] to out[0]
    raw_seam = np.abs(frames[-1].astype(int) - frames[0]).mean()
    step = np.abs(frames[5].astype(int) - frames[4]).mean()
    assert seam < 0.5 * raw_seam and seam < 1.5 * step, (seam, raw_seam, step)


def test_loop_keys_are_checked():
    with pytest.raises(ValueError, match="overlap applies to mode: crossfade"):
        parse_stage({"stage": "loop", "overlap": 4})


# --- upscale ---------------------------------------------------------------------------------


def test_lanczos_upscale_size_and_content():
    frames = panning(2)
    out, _ = run(frames, [{"stage": "upscale", "factor": 2}])
    assert out[0].shape == (2 * H, 2 * W, 3)
    ref = cv2.resize(frames[0], (2 * W, 2 * H), interpolation=cv2.INTER_LANCZOS4)
    assert np.array_equal(out[0], ref)
    odd, _ = run(frames, [{"stage": "upscale", "factor": 1.3}])
    assert odd[0].shape == (62, 84, 3)  # 48·1.3 = 62.4, 64·1.3 = 83.2: nearest even sides


def test_windows_never_reach_across_a_cut():
    from stages.post.stream import PostFrame, windows

    frames = [PostFrame(np.full((2, 2, 3), i, np.uint8), cut=(i == 3)) for i in range(7)]
    seen = {w.index: ([int(f.image[0, 0, 0]) for f in w.before],
                      [int(f.image[0, 0, 0]) for f in w.after], w.data)
            for w in windows(iter(frames), 2, prepare=lambda f: int(f.image[0, 0, 0]) * 10)}
    assert seen[2] == ([0, 1], [], 20)
    assert seen[3] == ([], [4, 5], 30)
    assert seen[6] == ([4, 5], [], 60)
    assert sorted(seen) == list(range(7))

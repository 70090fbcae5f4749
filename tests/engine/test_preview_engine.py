"""The embedded preview engine, the engine registry and the image helper."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine import (
    PREVIEW_SPEC,
    CameraState,
    Engine,
    EngineError,
    GenerationRequest,
    PreviewEngine,
    UnknownEngineError,
    available_engines,
    engine_spec,
    get_engine,
    load_rgb,
)
from engine import registry
from engine.images import cover_resize
from engine.preview import FADE_FRAMES, REVISION, render_scene_card

cv2.setNumThreads(1)

W, H = 160, 128


def textured(w: int, h: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB image with plenty of structure (values 30..225)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(30, 226, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def request(**kw) -> GenerationRequest:
    base = dict(
        prompt="A lighthouse on a cliff at dusk",
        width=W,
        height=H,
        num_frames=9,
        fps=16,
        seed=1234,
        shot_id="s01",
    )
    base.update(kw)
    return GenerationRequest(**base)


def linear_pan(n: int, start: float, end: float) -> list[CameraState]:
    return [CameraState(pan_x=start + (end - start) * i / (n - 1)) for i in range(n)]


@pytest.fixture(scope="module")
def eng() -> PreviewEngine:
    return PreviewEngine()


# -- spec and identity ------------------------------------------------------------------------


def test_spec_and_identity(eng):
    spec = eng.spec
    assert spec is PREVIEW_SPEC
    assert spec.name == "preview"
    assert (spec.frame_rule.step, spec.frame_rule.offset) == (4, 1)
    assert spec.default_fps == 16 and spec.default_resolution == (832, 480)
    assert spec.max_frames == 81
    assert spec.modes == frozenset({"t2v", "i2v", "flf2v", "t2i"})  # t2i: keyframe stills
    assert eng.identity() == {"engine": "preview", "revision": REVISION}
    assert isinstance(REVISION, str) and REVISION


def test_takes_no_options():
    with pytest.raises(TypeError, match="no options"):
        PreviewEngine(device="cuda")


# -- output shape, validation -----------------------------------------------------------------


def test_shape_and_dtype(eng):
    out = eng.generate(request())
    assert out.shape == (9, H, W, 3) and out.dtype == np.uint8
    assert out.flags.c_contiguous


@pytest.mark.parametrize("frames", [8, 10, 1, 4, 0])
def test_frame_rule_enforced(eng, frames):
    with pytest.raises(EngineError, match=rf"num_frames={frames}.*4n\+1"):
        eng.generate(request(num_frames=frames))


def test_max_frames_enforced(eng):
    with pytest.raises(EngineError, match="num_frames=85.*max_frames=81"):
        eng.generate(request(num_frames=85))


@pytest.mark.parametrize("field,value", [("width", 100), ("height", 120), ("width", 0)])
def test_resolution_multiple_of_16(eng, field, value):
    with pytest.raises(EngineError, match=rf"{field}={value}"):
        eng.generate(request(**{field: value}))


def test_bad_camera_length_names_both_numbers(eng):
    with pytest.raises(EngineError, match=r"camera has 3 states but num_frames=9"):
        eng.generate(request(camera=[CameraState()] * 3))


def test_bad_camera_values(eng):
    cam = [CameraState()] * 8 + [CameraState(zoom=-1.5)]
    with pytest.raises(EngineError, match="zoom"):
        eng.generate(request(camera=cam))
    with pytest.raises(EngineError, match=r"camera\[0\]"):
        eng.generate(request(camera=[(0, 0, 0, 0, 0)] * 9))


@pytest.mark.parametrize(
    "image,match",
    [
        (np.zeros((H, W, 3), np.float32), "dtype float32"),
        (np.zeros((H, W), np.uint8), r"shape \(128, 160\)"),
        (np.zeros((H, W, 4), np.uint8), r"shape \(128, 160, 4\)"),
        ([[0]], "numpy"),
    ],
)
def test_bad_images(eng, image, match):
    with pytest.raises(EngineError, match="start_image.*" + match):
        eng.generate(request(start_image=image))
    with pytest.raises(EngineError, match="end_image.*" + match):
        eng.generate(request(end_image=image))


@pytest.mark.parametrize("motion", [-1.0, float("nan"), "fast", True])
def test_bad_motion_param(eng, motion):
    with pytest.raises(EngineError, match="motion"):
        eng.generate(request(params={"motion": motion}))


# -- determinism and seeds --------------------------------------------------------------------


def test_deterministic(eng):
    cam = [CameraState(pan_x=0.1 * i / 8, zoom=0.05 * i / 8, rotate=i) for i in range(9)]
    a = eng.generate(request(camera=cam))
    b = PreviewEngine().generate(request(camera=cam))
    assert np.array_equal(a, b)


def test_seed_changes_background_and_objects(eng):
    a = eng.generate(request(seed=1))
    b = eng.generate(request(seed=2))
    assert not np.array_equal(a[0], b[0])  # background
    img = textured(W, H)
    a = eng.generate(request(seed=1, start_image=img))
    b = eng.generate(request(seed=2, start_image=img))
    assert np.array_equal(a[0], b[0])  # same start image
    assert not np.array_equal(a[-1], b[-1])  # different objects


def test_negative_and_huge_seeds(eng):
    a = eng.generate(request(seed=-5))
    b = eng.generate(request(seed=2**70 + 3))
    assert a.shape == b.shape == (9, H, W, 3)


# -- start, end, camera -----------------------------------------------------------------------


def test_start_image_is_frame_zero_exactly(eng):
    img = textured(W, H)
    cam = [CameraState(pan_x=0.2, zoom=0.3 + 0.02 * i, tilt=2.0) for i in range(9)]
    out = eng.generate(request(start_image=img, camera=cam))
    assert np.array_equal(out[0], img)
    assert not np.array_equal(out[-1], img)


def test_start_image_of_other_size_is_cover_resized(eng):
    big = textured(400, 200, seed=3)
    out = eng.generate(request(start_image=big))
    assert np.array_equal(out[0], cover_resize(big, W, H))


def test_end_image_is_last_frame_exactly(eng):
    end = textured(W, H, seed=7)
    cam = linear_pan(9, 0.0, 0.3)
    out = eng.generate(request(end_image=end, camera=cam))
    assert np.array_equal(out[-1], end)
    assert not np.array_equal(out[0], end)


def test_first_last_frame_mode(eng):
    start, end = textured(W, H, 1), textured(W, H, 2)
    out = eng.generate(request(start_image=start, end_image=end, num_frames=17))
    assert np.array_equal(out[0], start) and np.array_equal(out[-1], end)
    # monotone approach to the end image over the second half
    dist = [np.abs(f.astype(int) - end).mean() for f in out]
    assert dist[-1] == 0 and dist[8] > dist[12] > dist[15] > 0


def test_camera_pan_shifts_content_by_expected_amount(eng):
    img = textured(W, H, seed=11)
    n = 17
    # camera path is absolute; the move since camera[0] is 0.25 * W = 40 px to the left
    cam = linear_pan(n, 0.1, 0.35)
    out = eng.generate(request(start_image=img, camera=cam, num_frames=n, params={"motion": 0}))
    shift = int(0.25 * W)
    assert np.array_equal(out[0], img)
    assert np.array_equal(out[-1][:, : W - shift], img[:, shift:])
    # half way: 20 px (checked above the caption band)
    mid = out[(n - 1) // 2]
    band = int(H * 0.8)
    assert np.array_equal(mid[:band, : W - shift // 2], img[:band, shift // 2 :])
    # measured independently by phase correlation
    (dx, dy), _ = cv2.phaseCorrelate(
        cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float64),
        cv2.cvtColor(out[-1], cv2.COLOR_RGB2GRAY).astype(np.float64),
    )
    assert abs(dx + shift) < 0.5 and abs(dy) < 0.5


def test_reflected_border_never_black(eng):
    img = np.full((H, W, 3), 90, np.uint8)
    cam = linear_pan(9, 0.0, 0.45)
    out = eng.generate(request(start_image=img, camera=cam, params={"motion": 0}))
    assert out.min() > 0


def test_no_camera_no_motion_no_caption_is_still(eng):
    img = textured(W, H)
    out = eng.generate(request(start_image=img, params={"motion": 0, "caption": False}))
    assert all(np.array_equal(f, img) for f in out)
    card = eng.generate(request(params={"motion": 0.0}))
    assert all(np.array_equal(f, card[0]) for f in card)


def test_caption_is_drawn_mid_segment_only(eng):
    img = textured(W, H)
    out = eng.generate(request(start_image=img, params={"motion": 0}))
    assert np.array_equal(out[0], img) and np.array_equal(out[-1], img)
    mid = out[4]
    band_top = int(H * 0.85)
    assert np.array_equal(mid[:band_top], img[:band_top])  # only the bottom band changes
    assert not np.array_equal(mid[band_top:], img[band_top:])


# -- motion -----------------------------------------------------------------------------------


def test_consecutive_frames_differ(eng):
    for req in (request(num_frames=17), request(num_frames=17, start_image=textured(W, H))):
        out = eng.generate(req)
        for i in range(1, len(out)):
            diff = np.abs(out[i].astype(int) - out[i - 1]).mean()
            assert diff > 0.05, f"frames {i - 1} and {i} are (nearly) identical"


def test_objects_fade_in(eng):
    img = textured(W, H)
    out = eng.generate(request(start_image=img, params={"caption": False}, num_frames=9))
    diffs = [np.abs(out[i].astype(int) - img).sum() for i in range(FADE_FRAMES + 1)]
    assert diffs[0] == 0
    assert all(b > a for a, b in zip(diffs, diffs[1:]))


def test_motion_scales_speed(eng):
    img = textured(W, H)
    slow = eng.generate(request(start_image=img, params={"motion": 0.5, "caption": False}))
    fast = eng.generate(request(start_image=img, params={"motion": 2.0, "caption": False}))
    assert not np.array_equal(slow[-1], fast[-1])
    # frame-to-frame change after the fade-in is larger when faster
    d_slow = np.abs(slow[-1].astype(int) - slow[-2]).sum()
    d_fast = np.abs(fast[-1].astype(int) - fast[-2]).sum()
    assert d_fast > d_slow


def test_progress_called_per_frame(eng):
    calls = []
    eng.generate(request(), progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 9) for i in range(1, 10)]


# -- the scene card ---------------------------------------------------------------------------


def test_scene_card_depends_on_prompt_and_shot_id(eng):
    a = eng.generate(request(prompt="a red fox", shot_id="s01"))[0]
    b = eng.generate(request(prompt="a blue whale", shot_id="s01"))[0]
    c = eng.generate(request(prompt="a red fox", shot_id="s02"))[0]
    assert not np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(b, c)


def test_scene_card_has_visible_texture():
    card = render_scene_card(W, H, seed=5, shot_id="s01", prompt="")
    # grid and dots: plenty of local contrast, not a flat gradient
    gx = np.abs(np.diff(card.astype(int), axis=1)).mean()
    assert gx > 1.0
    assert card.std() > 5


@pytest.mark.parametrize(
    "prompt",
    [
        "Ein Leuchtturm über dem Meer — 灯台と波 🌊🎬 ${not_interpolated}",
        "tab\tnew\nline\x00nul\u200bzero-width",
        "x" * 500,
        "",
        "   ",
    ],
)
def test_unusual_text_never_crashes(eng, prompt):
    out = eng.generate(request(prompt=prompt, shot_id="s_ü🎬"))
    assert out.shape == (9, H, W, 3)
    out = eng.generate(request(prompt=prompt, start_image=textured(W, H)))
    assert out.shape == (9, H, W, 3)


def test_full_resolution(eng):
    img = textured(832, 480)
    cam = [CameraState(pan_x=0.02 * i, zoom=0.01 * i, rotate=0.5 * i) for i in range(9)]
    out = eng.generate(
        GenerationRequest(
            prompt="full size", width=832, height=480, num_frames=9, fps=16, seed=3,
            start_image=img, camera=cam,
        )
    )
    assert out.shape == (9, 480, 832, 3)
    assert np.array_equal(out[0], img)


# -- registry ---------------------------------------------------------------------------------


def test_registry_lookups():
    assert "preview" in available_engines()
    assert available_engines() == sorted(available_engines())
    assert engine_spec("preview") is PREVIEW_SPEC
    eng = get_engine("preview")
    assert isinstance(eng, PreviewEngine) and isinstance(eng, Engine)


def test_unknown_engine_did_you_mean():
    with pytest.raises(UnknownEngineError) as info:
        get_engine("previw")
    err = info.value
    assert isinstance(err, KeyError)
    msg = str(err)
    assert "did you mean 'preview'" in msg.lower()
    assert "Known engines: " in msg and "preview" in msg
    with pytest.raises(KeyError, match="unknown engine 'wan99'"):
        engine_spec("wan99")


def test_register_lazy_factory():
    spec = replace(PREVIEW_SPEC, name="preview_alias")
    registry.register("preview_alias", spec, "engine.preview:PreviewEngine")
    try:
        assert "preview_alias" in available_engines()
        assert engine_spec("preview_alias").name == "preview_alias"
        assert isinstance(get_engine("preview_alias"), PreviewEngine)
        with pytest.raises(ValueError, match="already registered"):
            registry.register("preview_alias", spec, PreviewEngine)
    finally:
        registry.unregister("preview_alias")
    assert "preview_alias" not in available_engines()


def test_package_import_is_light():
    code = (
        "import sys, engine; "
        "bad = [m for m in ('torch', 'prefect', 'hydra', 'omegaconf', 'diffusers') if m in sys.modules]; "
        "assert not bad, bad"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


# -- images -----------------------------------------------------------------------------------


def test_load_rgb_from_file_and_arrays(tmp_path):
    from PIL import Image

    src = textured(300, 100, seed=9)
    path = tmp_path / "wide.png"
    Image.fromarray(src).save(path)
    out = load_rgb(path, W, H)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    assert np.array_equal(load_rgb(str(path), W, H), out)
    # same size: untouched
    same = textured(W, H)
    assert np.array_equal(load_rgb(same, W, H), same)
    # grey and RGBA arrays, float in [0, 1]
    assert load_rgb(np.zeros((50, 60), np.uint8), W, H).shape == (H, W, 3)
    rgba = np.dstack([same, np.full((H, W), 7, np.uint8)])
    assert np.array_equal(load_rgb(rgba, W, H), same)
    assert np.array_equal(load_rgb(same / 255.0, W, H), same)
    # RGBA / palette file
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert np.array_equal(load_rgb(tmp_path / "a.png", W, H), same)


def test_cover_resize_centre_crops():
    # left third red, middle green, right third blue; a 3:1 image into 1:1 keeps the middle
    img = np.zeros((40, 120, 3), np.uint8)
    img[:, :40, 0] = 255
    img[:, 40:80, 1] = 255
    img[:, 80:, 2] = 255
    out = cover_resize(img, 32, 32)
    assert out.shape == (32, 32, 3)
    assert out[:, 2:-2, 1].min() > 200 and out[:, 2:-2, 0].max() < 30


def test_load_rgb_errors(tmp_path):
    from engine import ImageLoadError

    with pytest.raises(ImageLoadError, match="not found"):
        load_rgb(tmp_path / "missing.png", W, H)
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(ImageLoadError, match="cannot read"):
        load_rgb(tmp_path / "junk.png", W, H)
    with pytest.raises(ImageLoadError, match="shape"):
        load_rgb(np.zeros((4, 4, 2), np.uint8), W, H)


# -- cast references and stills (issue 14) ----------------------------------------------------


def test_reference_inset_in_every_frame_exactly(eng):
    from engine.preview import reference_box, reference_inset

    ref = textured(40, 72, seed=7)  # any size: cover-resized into the inset
    start, end = textured(W, H, 1), textured(W, H, 2)
    path = linear_pan(9, 0.0, 0.1)
    plain = eng.generate(request(start_image=start, end_image=end, camera=path))
    frames = eng.generate(request(start_image=start, end_image=end, camera=path,
                                  reference_images=[ref, textured(8, 8, 3)]))
    top, left, side = reference_box(W, H)
    inset = reference_inset(ref, W, H)
    assert inset.shape == (side, side, 3) and left + side < W
    for frame in frames:
        assert np.array_equal(frame[top:top + side, left:left + side], inset)
    # Outside the inset nothing changed.
    outside = np.ones((H, W), bool)
    outside[top:top + side, left:left + side] = False
    assert np.array_equal(frames[:, outside], plain[:, outside])


def test_requests_without_references_are_unchanged(eng):
    assert PREVIEW_SPEC.max_references == 3 and "t2i" in PREVIEW_SPEC.modes
    assert PREVIEW_SPEC.makes_video and REVISION == "preview-1"  # cache keys unchanged
    assert np.array_equal(eng.generate(request()), eng.generate(request(reference_images=())))


def test_reference_errors(eng):
    with pytest.raises(EngineError, match="at most 3"):
        eng.generate(request(reference_images=[textured(8, 8, i) for i in range(4)]))
    with pytest.raises(EngineError, match=r"reference_images\[0\] must be a numpy uint8"):
        eng.generate(request(reference_images=[np.zeros((8, 8, 3), np.float32)]))


def test_still_is_a_deterministic_card_with_the_inset(eng):
    from engine.base import ImageRequest
    from engine.preview import reference_box, reference_inset

    base = ImageRequest(prompt="the keeper at the lamp", width=W, height=H, seed=5,
                        label="s02 keyframe")
    steps = []
    image = eng.generate_image(base, progress=lambda d, t: steps.append((d, t)))
    assert image.shape == (H, W, 3) and image.dtype == np.uint8 and steps == [(1, 1)]
    assert np.array_equal(image, eng.generate_image(base))
    assert np.array_equal(image, render_scene_card(W, H, 5, "s02 keyframe", base.prompt))
    assert not np.array_equal(image, eng.generate_image(replace(base, seed=6)))
    assert not np.array_equal(image, eng.generate_image(replace(base, prompt="the sea")))
    ref = textured(30, 30, seed=9)
    with_ref = eng.generate_image(replace(base, reference_images=[ref]))
    top, left, side = reference_box(W, H)
    assert np.array_equal(with_ref[top:top + side, left:left + side], reference_inset(ref, W, H))
    with pytest.raises(EngineError, match="multiple of 16"):
        eng.generate_image(replace(base, width=100))

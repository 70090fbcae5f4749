"""The post-stage registry: a stage registered from outside stages/post/ (here, this test module)
is a full citizen: storyboards and enhance chains can name it, its parameters are validated, the
chain's predictions and ordering advice come from its declarations, and load_models calls its
own loader (never RIFE's)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from engine.preview import PREVIEW_SPEC
from flows.enhance import EXIT_OK, EnhanceSettings, run
from stages.media.video_io import video_info, write_video
from stages.post.chain import (
    PostChainError,
    chain_fps,
    chain_frames_out,
    chain_size,
    chain_warnings,
    load_models,
    resolve_post_chain,
    run_post_chain,
)
from stages.post.registry import STAGES, register, unregister
from stages.storyboard.problems import StoryboardInvalid
from stages.storyboard.validate import ValidateOptions, validate_storyboard
from tests.helpers.post_media import H, W, panning


class SharpenParams(BaseModel):
    """Unsharp mask: frame + amount·(frame - blurred frame); `crop` px cut from every side."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    amount: float = Field(0.5, ge=0.0, le=2.0)
    sigma: float = Field(1.0, gt=0.0, le=5.0)
    crop: int = Field(0, ge=0, le=8)


def sharpen(stream, fps, params: SharpenParams, digests):
    for item in stream:
        image = item.image.astype(np.float32)
        blurred = cv2.GaussianBlur(image, (0, 0), params.sigma)
        out = np.clip(image + params.amount * (image - blurred) + 0.5, 0, 255).astype(np.uint8)
        if params.crop:
            out = np.ascontiguousarray(out[params.crop:-params.crop, params.crop:-params.crop])
        item.image = out  # the cut flag travels on
        yield item


@pytest.fixture
def registered():
    """Register stages for one test; every name is unregistered afterwards."""
    names: list[str] = []

    def add(name, params, run_fn, **declarations):
        stage = register(name, params, run_fn, **declarations)
        names.append(name)
        return stage

    yield add
    for name in names:
        unregister(name)


@pytest.fixture
def with_sharpen(registered):
    registered("sharpen", SharpenParams, sharpen,
               size_out=lambda w, h, p: (w - 2 * p.crop, h - 2 * p.crop))


def test_a_registered_stage_runs_in_a_chain_and_a_preset(with_sharpen):
    frames = panning(6)
    presets = {"crisp": [{"stage": "scene_detect"}, {"stage": "sharpen", "amount": 1.0}]}
    for chain in (["crisp"], [{"stage": "sharpen", "amount": 1.0}]):
        steps = resolve_post_chain(chain, presets)
        assert steps[-1].stage == "sharpen" and steps[-1].params.amount == 1.0
        out, fps = run_post_chain(iter(frames), 16, steps)
        out = list(out)
        assert fps == 16 and len(out) == len(frames) == chain_frames_out(steps, 6, 16)
        # Sharpening raises local contrast: more high-frequency energy than the source.
        lap = [cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.CV_32F).var()
               for f in (frames[0], out[0])]
        assert lap[1] > lap[0] * 1.2
    # Its parameters reach content keys like any built-in stage's.
    assert steps[-1].as_dict() == {"stage": "sharpen", "amount": 1.0, "sigma": 1.0, "crop": 0}


def test_its_parameters_are_validated(with_sharpen):
    with pytest.raises(PostChainError, match=r"bad parameters for stage 'sharpen': amount: "
                                             r".*(got 3)"):
        resolve_post_chain([{"stage": "sharpen", "amount": 3}], {})
    with pytest.raises(PostChainError, match="strength"):
        resolve_post_chain([{"stage": "sharpen", "strength": 1}], {})
    # Messages that list stages list it too.
    with pytest.raises(PostChainError, match=r"did you mean 'sharpen'\?.*sharpen, slowmo"):
        resolve_post_chain([{"stage": "sharpn"}], {})


def test_a_storyboard_names_it(tmp_path, with_sharpen):
    board = {"fps": 16, "resolution": "128x64", "seed": 1,
             "shots": [{"id": "a", "prompt": "a lighthouse", "frames": 9}],
             "post": [{"stage": "sharpen", "amount": 0.8, "crop": 2}, "interpolate2x"]}
    path = tmp_path / "ep.yaml"
    path.write_text(yaml.safe_dump(board), encoding="utf-8")
    presets = {"interpolate2x": [{"stage": "interpolate", "factor": 2}]}
    vs = validate_storyboard(path, PREVIEW_SPEC, ValidateOptions(post_presets=presets))
    assert [s.stage for s in vs.post] == ["sharpen", "interpolate"]
    assert chain_size(vs.post, 128, 64) == (124, 60)
    assert chain_fps(vs.post, 16) == 32

    board["post"] = [{"stage": "sharpen", "amount": -1}]
    path.write_text(yaml.safe_dump(board), encoding="utf-8")
    with pytest.raises(StoryboardInvalid, match="post\\[0\\]|sharpen"):
        validate_storyboard(path, PREVIEW_SPEC, ValidateOptions(post_presets=presets))


def test_an_enhance_chain_runs_it(tmp_path, with_sharpen):
    clip = tmp_path / "in.mkv"
    write_video(clip, panning(8), 16, codec="ffv1")
    settings = EnhanceSettings(input=str(clip), output="out.mkv", cwd=str(tmp_path),
                               chain=[{"stage": "sharpen", "crop": 4}])
    assert run(settings) == EXIT_OK
    info = video_info(tmp_path / "out.mkv")
    assert (info.width, info.height, info.frames) == (W - 8, H - 8, 8)


def test_warnings_come_from_declarations(registered, with_sharpen):
    def passthrough(stream, fps, params, digests):
        return stream

    class NoParams(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

    registered("calm", NoParams, passthrough, temporal=True, smooths=True)
    registered("cuts", NoParams, passthrough, marks_cuts=True)
    registered("stretch", NoParams, passthrough, retimes=True,
               frames_out=lambda n, fps, p: 2 * n, fps_out=lambda fps, p: 2 * fps)

    def warnings(*names):
        return chain_warnings(resolve_post_chain([{"stage": n} for n in names], {}))

    # Not temporal, does not smooth: nowhere is a bad place for it.
    assert warnings("sharpen", "scene_detect", "interpolate", "sharpen") == []
    # A temporal stage before a cut marker, whatever their names.
    (w,) = warnings("calm", "cuts")
    assert w.startswith("post chain runs calm before cuts:") and w.endswith("put cuts first")
    # A smoothing stage after a retiming one.
    (w,) = warnings("cuts", "stretch", "calm")
    assert w.startswith("post chain runs stretch before calm: interpolation")
    assert warnings("cuts", "calm", "stretch") == []
    steps = resolve_post_chain([{"stage": "stretch"}], {})
    assert chain_frames_out(steps, 5, 16) == 10 and chain_fps(steps, 16) == 32


def test_load_models_calls_the_stages_own_loader(tmp_path, registered, monkeypatch):
    import stages.post.retime.rife as rife

    def not_rife(*args, **kwargs):
        raise AssertionError("a stage with its own loader was handed to RIFE")

    monkeypatch.setattr(rife, "load_rife", not_rife)
    weights = tmp_path / "denoiser.bin"
    weights.write_bytes(b"tiny weights")
    loaded = []

    class DenoiseParams(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        files: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {
            "model": ("denoiser weights", (".bin",))}
        model: str
        device: str = "cpu"

    def run_denoise(stream, fps, params, digests):
        return stream

    registered("denoise", DenoiseParams, run_denoise,
               load=lambda params, digests: loaded.append((params.model, digests["model"])))
    steps = resolve_post_chain([{"stage": "denoise", "model": "denoiser.bin"}], {},
                               base_dir=tmp_path)
    load_models(steps)
    (path, digest), = loaded
    assert Path(path) == weights.resolve() and digest == steps[0].digests["model"]
    assert steps[0].as_dict()["model"] == {"file": "denoiser.bin", "sha256": digest}
    # Its file kind is its own: a storyboard naming a file of another kind is refused.
    (tmp_path / "denoiser.txt").write_text("x")
    board = {"fps": 16, "resolution": "128x64", "shots": [{"id": "a", "prompt": "p", "frames": 9}],
             "post": [{"stage": "denoise", "model": "denoiser.txt"}]}
    path = tmp_path / "ep.yaml"
    path.write_text(yaml.safe_dump(board), encoding="utf-8")
    with pytest.raises(StoryboardInvalid, match="denoiser weights"):
        validate_storyboard(path, PREVIEW_SPEC, ValidateOptions())


def test_registration_is_undone_and_names_are_unique(registered):
    assert "sharpen" not in STAGES
    with pytest.raises(ValueError, match="already registered"):
        registered("smooth", SharpenParams, sharpen)

"""Engine side of chained long shots on tiny random-weight Wan pipelines: latents handed back by
generate_with_latents, "latent" and "svi" conditioning built in place of the stock I2V
conditioning (checked on what the transformer actually receives), VACE context frames, and
clear errors where an engine or a request cannot chain that way."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from engine.base import EngineError, LoraRef
from engine.diffusers.pipeline_io import pil
from engine.diffusers.model_pool import ModelPool
from engine.registry import get_engine
from tests.helpers import tiny_pipelines as tiny
from tests.helpers.tiny_pipelines import random_image as image, tiny_request as request

torch.set_num_threads(1)

Z = 16  # latent channels of the tiny Wan VAE (as the real one); frames pack 4:1, pixels 8:1


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain-models")
    return {
        "i2v2": tiny.save_wan22_i2v(root / "wan22-i2v"),
        "i2v1": tiny.save_wan21_i2v(root / "wan21-i2v"),
        "vace": tiny.save_wan_vace(root / "wan-vace"),
        "lora": tiny.save_wan_lora(root / "lora", root / "wan22-i2v"),
    }


def loaded(name: str, model):
    """An engine on its own pool, loaded, and its resident pipeline."""
    pool = ModelPool()
    eng = get_engine(name, model=str(model), pool=pool)
    eng.load()
    return eng, pool._entries[eng.pool_key]


@contextlib.contextmanager
def transformer_inputs(pipe):
    """(expert name, hidden_states) of every transformer call: cat(noise, mask, condition)."""
    seen: list[tuple[str, torch.Tensor]] = []
    handles = []
    for name in ("transformer", "transformer_2"):
        module = getattr(pipe, name, None)
        if module is not None:
            handles.append(module.register_forward_pre_hook(
                lambda _m, _a, kwargs, name=name: seen.append(
                    (name, kwargs["hidden_states"].detach().clone())), with_kwargs=True))
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def vae_encodes(pipe):
    """The pixel videos the VAE encodes during the block."""
    seen: list[torch.Tensor] = []
    original = pipe.vae.encode

    def spy(x, *args, **kwargs):
        seen.append(x.detach().clone())
        return original(x, *args, **kwargs)

    pipe.vae.encode = spy
    try:
        yield seen
    finally:
        del pipe.vae.encode


def mask_and_condition(hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(4, L, h, w) mask and (Z, L, h, w) condition latents of one transformer input."""
    return hidden[0, Z:Z + 4], hidden[0, Z + 4:]


def per_frame(mask: torch.Tensor) -> list[list[float]]:
    """The mask's four sub-frame values per latent frame (each constant over the frame)."""
    frames = []
    for index in range(mask.shape[1]):
        frame = mask[:, index]
        assert torch.all(frame == frame[:, :1, :1]), "mask varies within a latent frame"
        frames.append([float(v) for v in frame[:, 0, 0]])
    return frames


def normalised_alone(pipe, picture: np.ndarray) -> torch.Tensor:
    """(Z, h, w): the image VAE-encoded on its own as one frame, in the denoiser's space."""
    pixels = pipe.video_processor.preprocess(pil(picture), height=64, width=64)
    with torch.inference_mode():
        latent = pipe.vae.encode(pixels.float().unsqueeze(2)).latent_dist.mode()
    config = pipe.vae.config
    mean = torch.tensor(config.latents_mean).view(1, Z, 1, 1, 1)
    std = torch.tensor(config.latents_std).view(1, Z, 1, 1, 1)
    return ((latent - mean) / std)[0, :, 0]


# -- generate_with_latents ------------------------------------------------------------------


def test_keep_latents_are_the_decoded_latents_and_leave_pixels_alone(models):
    wan, entry = loaded("wan22_i2v_a14b", models["i2v2"])
    pipe = entry.value
    decoded: list[torch.Tensor] = []
    original = pipe.vae.decode
    pipe.vae.decode = lambda z, *a, **k: decoded.append(z.clone()) or original(z, *a, **k)
    try:
        plain = wan.generate(request(start_image=image(1), num_frames=13))
        frames, latents = wan.generate_with_latents(
            request(start_image=image(1), num_frames=13, keep_latents=3))
    finally:
        del pipe.vae.decode
    assert np.array_equal(plain, frames)  # capturing latents changes no pixel
    assert latents.dtype == np.float32 and latents.shape == (Z, 3, 8, 8)  # 13 frames: L = 4
    # They are what the VAE decoded, in the normalised space the denoiser works in.
    config = pipe.vae.config
    mean = torch.tensor(config.latents_mean).view(1, Z, 1, 1, 1)
    std = torch.tensor(config.latents_std).view(1, Z, 1, 1, 1)
    expected = ((decoded[-1] - mean) / std)[0, :, -3:].numpy()
    np.testing.assert_allclose(latents, expected, rtol=1e-5, atol=1e-5)
    assert wan.generate_with_latents(request(start_image=image(1)))[1] is None  # keep 0


def test_keep_latents_more_than_the_segment_has_gives_all(models):
    wan, _ = loaded("wan22_i2v_a14b", models["i2v2"])
    _, latents = wan.generate_with_latents(request(start_image=image(1), keep_latents=9))
    assert latents.shape == (Z, 3, 8, 8)


# -- svi conditioning -----------------------------------------------------------------------


@pytest.mark.parametrize("motion, end", [(0, False), (0, True), (1, False), (1, True)])
def test_svi_condition_is_anchor_motion_zeros_end(models, motion, end):
    wan, entry = loaded("wan22_i2v_a14b", models["i2v2"])
    pipe = entry.value
    anchor, start, last = image(1), image(2), image(3)
    context = np.random.default_rng(7).standard_normal((Z, motion, 8, 8)).astype(np.float32)
    with transformer_inputs(pipe) as seen:
        frames, kept = wan.generate_with_latents(request(
            num_frames=13, start_image=start, anchor_image=anchor, end_image=last if end else None,
            conditioning="svi", context_latents=context if motion else None, keep_latents=1))
    assert frames.shape == (13, 64, 64, 3) and kept.shape == (Z, 1, 8, 8)
    assert {name for name, _ in seen} == {"transformer", "transformer_2"}  # both experts
    for _name, hidden in seen:
        mask, condition = mask_and_condition(hidden)
        known = [1.0] + [1.0] * motion + [0.0] * (3 - motion - end) + [1.0] * end
        assert per_frame(mask) == [[v] * 4 for v in known]
        torch.testing.assert_close(condition[:, 0], normalised_alone(pipe, anchor),
                                   rtol=1e-4, atol=1e-4)
        if motion:
            assert torch.equal(condition[:, 1:1 + motion], torch.from_numpy(context))
        assert torch.all(condition[:, 1 + motion:4 - end] == 0)
        if end:
            torch.testing.assert_close(condition[:, -1], normalised_alone(pipe, last),
                                       rtol=1e-4, atol=1e-4)
    assert "prepare_latents" not in vars(pipe)  # the stock method is back


def test_svi_chain_of_two_segments_keeps_lora_strengths_per_expert(models):
    from peft.tuners.lora import LoraLayer

    wan, entry = loaded("wan22_i2v_a14b", models["i2v2"])
    anchor = image(1)
    first, latents = wan.generate_with_latents(request(start_image=anchor, keep_latents=1))
    lora = (LoraRef(str(models["lora"]), 1.0, 0.25),)
    follow = request(num_frames=13, anchor_image=anchor, start_image=first[-1],
                     conditioning="svi", context_latents=latents, loras=lora)
    second = wan.generate(follow)
    assert second.shape == (13, 64, 64, 3)
    assert np.array_equal(second, wan.generate(follow))  # same seed, same pixels
    adapter = entry.adapters[str(models["lora"])]
    scalings = {name: {round(float(m.scaling[adapter]), 6)
                       for m in getattr(entry.value, name).modules()
                       if isinstance(m, LoraLayer) and adapter in m.scaling}
                for name in ("transformer", "transformer_2")}
    assert scalings == {"transformer": {1.0}, "transformer_2": {0.25}}


def test_svi_on_wan21_gives_the_clip_encoder_the_anchor(models):
    wan, entry = loaded("wan21_i2v", models["i2v1"])
    pipe = entry.value
    clip_inputs: list = []
    original = pipe.encode_image
    pipe.encode_image = lambda img, device=None: clip_inputs.append(img) or original(img, device)
    try:
        anchor, start = image(1), image(2)
        frames = wan.generate(request(start_image=start, anchor_image=anchor, conditioning="svi"))
    finally:
        del pipe.encode_image
    assert frames.shape == (9, 64, 64, 3)
    assert np.array_equal(np.asarray(clip_inputs[-1]), anchor)


def test_prepare_latents_is_restored_when_the_call_fails(models):
    wan, entry = loaded("wan22_i2v_a14b", models["i2v2"])
    pipe = entry.value

    def broken(*_a, **_k):
        raise RuntimeError("VAE went away")

    pipe.vae.encode = broken
    try:
        with pytest.raises(RuntimeError, match="VAE went away"):
            wan.generate(request(start_image=image(1), conditioning="svi"))
    finally:
        del pipe.vae.encode
    assert "prepare_latents" not in vars(pipe)
    assert wan.generate(request(start_image=image(1))).shape == (9, 64, 64, 3)


# -- latent conditioning --------------------------------------------------------------------


def test_latent_conditioning_uses_the_handed_over_latent_without_encoding_the_start(models):
    wan, entry = loaded("wan22_i2v_a14b", models["i2v2"])
    pipe = entry.value
    start = image(1)
    _, latents = wan.generate_with_latents(request(start_image=start, keep_latents=2))
    follow = request(start_image=start, conditioning="latent", context_latents=latents,
                     keep_latents=1, seed=5)
    with vae_encodes(pipe) as encoded, transformer_inputs(pipe) as seen:
        frames, kept = wan.generate_with_latents(follow)
        again, kept_again = wan.generate_with_latents(follow)
    assert np.array_equal(frames, again) and np.array_equal(kept, kept_again)  # deterministic
    assert kept.shape == (Z, 1, 8, 8)
    # Only the zero padding was encoded, once (memoised on the pipeline); never the start image.
    assert len(encoded) == 1 and torch.all(encoded[0] == 0)
    for _name, hidden in seen:
        mask, condition = mask_and_condition(hidden)
        assert per_frame(mask) == [[1.0] * 4, [0.0] * 4, [0.0] * 4]  # as stock I2V
        assert torch.equal(condition[:, 0], torch.from_numpy(latents[:, -1]))
    assert not np.array_equal(frames, wan.generate(request(start_image=start, seed=5)))


def test_latent_conditioning_with_an_end_image_keeps_the_stock_end_mask(models):
    wan, entry = loaded("wan22_i2v_a14b", models["i2v2"])
    pipe = entry.value
    start, last = image(1), image(2)
    _, latents = wan.generate_with_latents(request(start_image=start, keep_latents=1))
    with vae_encodes(pipe) as encoded, transformer_inputs(pipe) as seen:
        wan.generate(request(start_image=start, end_image=last, conditioning="latent",
                             context_latents=latents))
    end_pixels = pipe.video_processor.preprocess(pil(last), height=64, width=64)[0]
    assert len(encoded) == 1
    assert torch.all(encoded[0][0, :, :-1] == 0)
    torch.testing.assert_close(encoded[0][0, :, -1], end_pixels.float())
    mask, condition = mask_and_condition(seen[0][1])
    assert per_frame(mask) == [[1.0] * 4, [0.0] * 4, [0.0, 0.0, 0.0, 1.0]]
    assert torch.equal(condition[:, 0], torch.from_numpy(latents[:, -1]))


# -- VACE context frames --------------------------------------------------------------------


def test_vace_context_frames_are_known(models, monkeypatch):
    import diffusers

    vace, _ = loaded("wan_vace", models["vace"])
    seen: dict = {}
    original = diffusers.WanVACEPipeline.__call__
    monkeypatch.setattr(diffusers.WanVACEPipeline, "__call__",
                        lambda self, *a, **kw: seen.update(kw) or original(self, *a, **kw))
    context = np.stack([image(10 + i) for i in range(3)])
    last = image(2)
    frames, latents = vace.generate_with_latents(request(
        start_image=context[0], context_frames=context, end_image=last, keep_latents=1))
    assert frames.shape == (9, 64, 64, 3) and latents.shape == (Z, 1, 8, 8)
    video, mask = seen["video"], seen["mask"]
    for index in range(3):
        assert np.array_equal(np.asarray(video[index]), context[index])
        assert np.asarray(mask[index]).max() == 0
    assert all(np.asarray(m).min() == 255 for m in mask[3:-1])
    assert np.array_equal(np.asarray(video[-1]), last) and np.asarray(mask[-1]).max() == 0
    with pytest.raises(EngineError, match="context_frames has shape.*K <= 7"):
        vace.generate(request(start_image=context[0], context_frames=np.stack([context[0]] * 8),
                              end_image=last))


# -- what cannot chain ----------------------------------------------------------------------


def test_clear_errors_for_requests_an_engine_cannot_chain(models):
    vace = get_engine("wan_vace", model=str(models["vace"]), pool=ModelPool())
    with pytest.raises(EngineError, match="'wan_vace' cannot chain with conditioning 'svi'"):
        vace.generate(request(start_image=image(1), conditioning="svi"))
    ti2v = get_engine("wan22_ti2v_5b", model=str(models["i2v2"]), pool=ModelPool())
    with pytest.raises(EngineError, match="cannot chain with conditioning 'latent'.*last_frame"):
        ti2v.generate(request(start_image=image(1), conditioning="latent"))

    wan, entry = loaded("wan22_i2v_a14b", models["i2v2"])
    with pytest.raises(EngineError, match="svi conditioning needs an anchor image"):
        wan.generate(request(conditioning="svi"))
    with pytest.raises(EngineError, match="'latent' needs context_latents"):
        wan.generate(request(start_image=image(1), conditioning="latent"))
    with pytest.raises(EngineError, match=r"context_latents has shape \(16, 1, 4, 4\).*resolution"):
        wan.generate(request(start_image=image(1), conditioning="latent",
                             context_latents=np.zeros((Z, 1, 4, 4), np.float32)))
    with pytest.raises(EngineError, match="too few.*at least 13 frames"):
        wan.generate(request(start_image=image(1), end_image=image(2), conditioning="svi",
                             context_latents=np.zeros((Z, 1, 8, 8), np.float32)))
    with pytest.raises(EngineError, match="unknown conditioning 'pixel'"):
        wan.generate(request(start_image=image(1), conditioning="pixel"))
    # A TI2V (expand_timesteps) checkpoint behind an I2V engine is refused before it runs.
    pipe = entry.value
    pipe.register_to_config(expand_timesteps=True)
    try:
        with pytest.raises(EngineError, match="TI2V \\(expand_timesteps\\)"):
            wan.generate(request(start_image=image(1), conditioning="svi"))
    finally:
        pipe.register_to_config(expand_timesteps=False)
    assert "prepare_latents" not in vars(pipe)

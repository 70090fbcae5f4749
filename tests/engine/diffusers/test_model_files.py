"""Single checkpoint files (engine.options.files) on tiny random-weight Wan pipelines: the
original Wan / ComfyUI layout, ComfyUI's fp8 "scaled" layout and city96-style GGUF, loaded
through the engine's normal path, against the diffusers folder they were written from.

Tolerances (measured on these tiny models: 2 steps, 9 frames, 64x64, seeds 0-9):
- original layout, same dtype: the folder's pixels (only names change).
- every format: the pixels of a diffusers folder holding the weights the file decodes to
  (fp8 * scale; GGUF Q8_0 as diffusers dequantizes it): the proof that scales are applied and
  names converted. "The same" means within 1 level and a latent error <= 1e-5: identical
  weights at other memory alignments (a safetensors mmap vs a fresh tensor) take other CPU
  kernel paths and differ in the last float bits (measured 5e-7 on one forward).
- against the original full-precision folder, the final latents (what the transformer
  computes) differ by a relative L2 error of 0.34-0.35 % (fp8 e4m3, per tensor or per channel)
  and 0.20 % (Q8_0); with the fp8 scales ignored it is 65-70 %, another seed 135 %. Asserted:
  <= 1 %. Pixels: the tiny random VAE barely depends on its latents (another seed moves pixels
  by a mean of 1.0 level, ignoring the scales by 1.03 levels with 10.9 % of pixels off by more
  than 2 levels), so pixels are a weak test here: measured mean <= 0.20 levels and <= 1.8 % of
  pixels off by more than 2 (a few isolated pixels by up to 39); asserted mean <= 0.3 and
  <= 3 %.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.diffusers.options import EngineConfigError
from engine.diffusers.model_pool import ModelPool
from engine.registry import get_engine
from tests.helpers import comfy_files as cf
from tests.helpers import tiny_pipelines as tiny

torch.set_num_threads(1)

LATENT_ERROR, MEAN_LEVELS, OFF_PIXELS = 0.01, 0.3, 0.03
SAME_LATENTS = 1e-5


request = tiny.tiny_request


def image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (64, 64, 3), dtype=np.uint8)


def render(model, files=None, engine="wan21_t2v", **kw) -> np.ndarray:
    wan = get_engine(engine, model=str(model), files=files or {}, pool=ModelPool())
    return wan.generate(request(**kw))


def with_weights(base: Path, dest: Path, weights: dict[str, dict]) -> Path:
    """A copy of the diffusers folder `base` whose components hold `weights`."""
    from safetensors.torch import save_file

    shutil.copytree(base, dest)
    for component, state in weights.items():
        name = "model.safetensors" if component == "text_encoder" else \
            "diffusion_pytorch_model.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(dest / component / name))
    return dest


def compare(engine, model, seed: int = 3, **kw) -> tuple[float, np.ndarray]:
    """(relative L2 error of the final latents, |pixel difference|) of `engine` against the
    diffusers folder `model` on the same request."""
    ask = request(seed=seed, keep_latents=3, **kw)
    frames, latents = engine.generate_with_latents(ask)
    folder = get_engine(engine.spec.name, model=str(model), pool=ModelPool())
    want_frames, want_latents = folder.generate_with_latents(ask)
    error = float(np.linalg.norm(latents - want_latents) / np.linalg.norm(want_latents))
    return error, np.abs(frames.astype(int) - want_frames.astype(int))


def assert_same(engine, model, **kw) -> None:
    error, diff = compare(engine, model, **kw)
    assert error <= SAME_LATENTS and diff.max() <= 1, (error, diff.max())


def assert_close(engine, model, seed: int, **kw) -> None:
    error, diff = compare(engine, model, seed, **kw)
    assert error <= LATENT_ERROR, error
    assert diff.mean() <= MEAN_LEVELS and (diff > 2).mean() <= OFF_PIXELS, \
        (diff.mean(), (diff > 2).mean())


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("model-files")
    t2v = tiny.save_wan_t2v(root / "wan-t2v", head_dim=16)  # 32-wide: Q8_0 blocks fit
    return {"root": root, "t2v": t2v, "i2v2": tiny.save_wan22_i2v(root / "wan22-i2v"),
            "state": cf.transformer_state(t2v)}


@pytest.fixture(scope="module")
def folder_pixels(models):
    return render(models["t2v"])


def test_original_layout_file_gives_the_folder_pixels(models, folder_pixels):
    path = models["root"] / "wan2.1_t2v_tiny_fp32.safetensors"
    cf.save_original(models["state"], path)  # model.diffusion_model.blocks.0.self_attn.q...
    wan = get_engine("wan21_t2v", model=str(models["t2v"]), files={"transformer": str(path)},
                     pool=ModelPool())
    found = wan.model_files["transformer"]
    assert (found.layout, found.quantization, found.prefix) == \
        ("original", "fp32", "model.diffusion_model.")
    assert_same(wan, models["t2v"])
    # In bf16 the file's transformer is the folder's, dtype by dtype: what diffusers keeps in
    # fp32 (time embedder, norms, modulation) stays fp32, as from_pretrained does.
    loaded = []
    for files in ({}, {"transformer": str(path)}):
        pool = ModelPool()
        bf16 = get_engine("wan21_t2v", model=str(models["t2v"]), files=files, dtype="bf16",
                          device="cpu", pool=pool)
        bf16.load()
        loaded.append(pool._entries[bf16.pool_key].value.transformer.state_dict())
    assert {k: v.dtype for k, v in loaded[0].items()} == {k: v.dtype for k, v in loaded[1].items()}
    assert {str(v.dtype) for v in loaded[1].values()} == {"torch.bfloat16", "torch.float32"}
    assert all(torch.equal(loaded[0][k], loaded[1][k]) for k in loaded[0])


def test_diffusers_layout_file_with_prefix_and_extra_tensors(models):
    """A component saved on its own with a prefix (as some all-in-one files do) and tensors the
    model does not use: only its own names load, nothing is "converted"."""
    from safetensors.torch import save_file

    vae = cf.transformer_state(models["t2v"], "vae")
    path = models["root"] / "wan_vae_diffusers.safetensors"
    save_file({**{"vae." + k: v for k, v in vae.items()}, "vae.extra.weight": torch.ones(2),
               "model.diffusion_model.x.weight": torch.ones(2)}, str(path))
    wan = get_engine("wan21_t2v", model=str(models["t2v"]), files={"vae": str(path)},
                     pool=ModelPool())
    found = wan.model_files["vae"]
    assert (found.layout, found.prefix) == ("diffusers", "vae.")
    assert_same(wan, models["t2v"])


@pytest.mark.parametrize("fmt", ["fp8_scaled", "fp8_scaled_per_channel", "gguf_q8_0"])
def test_quantized_files_decode_exactly_and_stay_close(models, folder_pixels, fmt):
    root, state = models["root"], models["state"]
    if fmt == "gguf_q8_0":
        path = root / "wan2.1-t2v-tiny-Q8_0.gguf"
        expected = cf.save_gguf(state, path)
    else:
        path = root / f"wan2.1_t2v_tiny_{fmt}.safetensors"
        expected = cf.save_fp8_scaled(state, path, per_channel=fmt.endswith("channel"))
    pool = ModelPool()
    wan = get_engine("wan21_t2v", model=str(models["t2v"]), files={"transformer": str(path)},
                     pool=pool)
    found = wan.model_files["transformer"]
    assert found.quantization == ("GGUF Q8_0" if fmt.startswith("gguf") else "fp8 scaled")
    # Memory once loaded in bf16: GGUF stays quantized, fp8 is dequantized (2 bytes a weight).
    assert found.loaded_bytes(2) == (found.size if fmt.startswith("gguf") else 2 * found.size)
    frames = wan.generate(request())
    assert not np.array_equal(frames, folder_pixels)  # a lossy format
    if fmt.startswith("gguf"):  # the linear layers stay quantized (diffusers' GGUF quantizer)
        transformer = pool._entries[wan.pool_key].value.transformer
        assert type(transformer.blocks[0].attn1.to_q).__name__ == "GGUFLinear"
    assert_same(wan, with_weights(models["t2v"], root / f"decoded-{fmt}",
                                  {"transformer": expected}))
    for seed in (3, 5):
        assert_close(wan, models["t2v"], seed)


def test_two_experts_vae_and_text_encoder_from_files(models):
    """Wan 2.2 A14B as ComfyUI users hold it: high- and low-noise experts in fp8 scaled and
    bf16 original layout, the VAE in the original layout, umt5 in fp8 scaled; the folder
    gives configs, tokenizer and scheduler only."""
    root, base = models["root"], models["i2v2"]
    # The original-layout VAE converter expects the real Wan VAE's block structure.
    folder = root / "wan22-i2v-vae"
    shutil.copytree(base, folder)
    shutil.rmtree(folder / "vae")
    cf.tiny_wan_vae_like_original().save_pretrained(folder / "vae")
    files = {"transformer": root / "wan2.2_i2v_high_noise_tiny_fp8_scaled.safetensors",
             "transformer_2": root / "wan2.2_i2v_low_noise_tiny_bf16.safetensors",
             "vae": root / "wan_2.1_vae_tiny.safetensors",
             "text_encoder": root / "umt5_tiny_fp8_e4m3fn_scaled.safetensors"}
    expected = {
        "transformer": cf.save_fp8_scaled(cf.transformer_state(folder), files["transformer"]),
        "transformer_2": cf.save_original(cf.transformer_state(folder, "transformer_2"),
                                          files["transformer_2"], prefix="",
                                          dtype=torch.bfloat16),
        "vae": cf.save_vae_original(cf.transformer_state(folder, "vae"), files["vae"]),
        "text_encoder": cf.save_t5_fp8_scaled(folder, files["text_encoder"]),
    }
    configs_only = root / "wan22-i2v-configs"
    shutil.copytree(folder, configs_only,
                    ignore=shutil.ignore_patterns("*.safetensors"))  # as `--include "*.json"`
    with pytest.raises(EngineConfigError, match="no weights.*engine.options.files"):
        get_engine("wan22_i2v_a14b", model=str(configs_only), pool=ModelPool())
    wan = get_engine("wan22_i2v_a14b", model=str(configs_only),
                     files={k: str(v) for k, v in files.items()}, pool=ModelPool())
    kinds = {c: (f.layout, f.quantization) for c, f in wan.model_files.items()}
    assert kinds == {"transformer": ("original", "fp8 scaled"),
                     "transformer_2": ("original", "bf16"), "vae": ("original", "fp32"),
                     "text_encoder": ("transformers", "fp8 scaled")}
    ask = dict(start_image=image(1), params={"steps": 4, "cfg": 2.0})
    assert_same(wan, with_weights(folder, root / "wan22-decoded", expected), **ask)
    assert_close(wan, folder, 3, **ask)


def test_gguf_text_encoder_with_llama_cpp_names(models):
    """city96's umt5-xxl-encoder-*.gguf layout: llama.cpp tensor names, Q8_0; dequantized
    into the compute dtype (transformers models have no GGUF quantizer)."""
    from safetensors.torch import load_file

    root = models["root"]
    path = root / "umt5-tiny-encoder-Q8_0.gguf"
    state = load_file(str(models["t2v"] / "text_encoder" / "model.safetensors"))
    expected = cf.save_gguf(state, path, arch="t5encoder", rename=cf.t5_llama_name)
    pool = ModelPool()
    wan = get_engine("wan21_t2v", model=str(models["t2v"]), files={"text_encoder": str(path)},
                     pool=pool)
    found = wan.model_files["text_encoder"]
    assert (found.layout, found.quantization) == ("llama.cpp", "GGUF Q8_0")
    wan.load()
    loaded = pool._entries[wan.pool_key].value.text_encoder.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in expected.items())
    assert loaded["encoder.embed_tokens.weight"] is loaded["shared.weight"] or torch.equal(
        loaded["encoder.embed_tokens.weight"], expected["shared.weight"])  # tied
    assert_same(wan, with_weights(models["t2v"], root / "t5-decoded", {"text_encoder": expected}))


def test_identity_and_pool_key_follow_the_file(models, tmp_path):
    path = tmp_path / "a.safetensors"
    cf.save_original(models["state"], path)
    plain = get_engine("wan21_t2v", model=str(models["t2v"]))
    first = get_engine("wan21_t2v", model=str(models["t2v"]), files={"transformer": str(path)})
    same = get_engine("wan21_t2v", model=str(models["t2v"]), files={"transformer": str(path)})
    ident = first.identity()
    assert "files" not in plain.identity()  # content keys without files are unchanged
    assert ident == same.identity() and ident != plain.identity()
    assert ident["files"]["transformer"].startswith("a.safetensors:")
    assert str(tmp_path) not in repr(ident)
    changed = {k: v * 1.5 for k, v in models["state"].items()}
    cf.save_original(changed, path)  # same name and size, other weights
    other = get_engine("wan21_t2v", model=str(models["t2v"]), files={"transformer": str(path)})
    assert other.identity() != ident and other.pool_key != first.pool_key


def _sdxl_like(path: Path) -> None:
    from safetensors.torch import save_file

    names = ["input_blocks.0.0.weight", "input_blocks.1.0.in_layers.0.weight", "out.2.weight",
             "middle_block.0.emb_layers.1.weight", "time_embed.0.weight"]
    save_file({"model.diffusion_model." + n: torch.zeros(4, 4) for n in names}
              | {"first_stage_model.decoder.conv_in.weight": torch.zeros(2, 2)}, str(path))


def test_wrong_files_are_config_errors_naming_key_file_and_content(models, tmp_path):
    t2v, state = models["t2v"], models["state"]

    def refused(files, match, model=t2v, engine="wan21_t2v"):
        with pytest.raises(EngineConfigError, match=match) as info:
            get_engine(engine, model=str(model), files=files, pool=ModelPool())
        return str(info.value)

    vae = tmp_path / "wan_2.1_vae.safetensors"
    cf.save_diffusers_file(cf.transformer_state(t2v, "vae"), vae)
    message = refused({"transformer": str(vae)}, r"engine\.options\.files\.transformer=")
    assert "wan_2.1_vae.safetensors" in message and "a Wan VAE in the diffusers layout" in message
    assert "needs the transformer of WanPipeline" in message

    sdxl = tmp_path / "sd_xl_base_1.0.safetensors"
    _sdxl_like(sdxl)
    message = refused({"transformer": str(sdxl)}, "SD 1.x / SDXL UNet")
    assert "a safetensors file with 6 tensors" in message
    assert "(model.diffusion_model.input_blocks...)" in message

    original = tmp_path / "wan.safetensors"
    cf.save_original(state, original)
    cut = tmp_path / "wan_cut.safetensors"
    cut.write_bytes(original.read_bytes()[:-1000])
    refused({"transformer": str(cut)}, "wan_cut.safetensors: a truncated safetensors file")
    gguf = tmp_path / "wan.gguf"
    cf.save_gguf(state, gguf)
    cut_gguf = tmp_path / "wan_cut.gguf"
    cut_gguf.write_bytes(gguf.read_bytes()[:-1000])
    refused({"transformer": str(cut_gguf)}, "damaged or truncated GGUF")
    junk = tmp_path / "notes.safetensors"
    junk.write_bytes(b"this is not a model at all" * 10)
    refused({"transformer": str(junk)}, "neither safetensors .* nor GGUF")
    pickle = tmp_path / "wan.pth"
    torch.save({"w": torch.zeros(2)}, pickle)
    refused({"transformer": str(pickle)}, "pickle checkpoint")

    # The 32-wide transformer file against the 24-wide folder: another size of the model.
    message = refused({"transformer": str(original)}, "does not fit the transformer config",
                      model=models["i2v2"], engine="wan22_i2v_a14b")
    assert "is 32x32 in the file but 24x24 in the config" in message

    lora = tiny.save_wan_lora(tmp_path / "lora", models["i2v2"])
    refused({"transformer": str(lora)}, "a LoRA.*`loras:`")
    refused({"transformer": str(tmp_path / "missing.safetensors")}, "no such file")
    refused({"transformer_2": str(original)}, "has no 'transformer_2' component")
    refused({"tokenizer": str(original)}, "no weights to replace")
    refused({"vae": str(original)}, "a Wan transformer.*needs the vae")
    refused("transformer.safetensors", r"engine\.options\.files=")
    with pytest.raises(EngineConfigError, match="single checkpoint file.*engine.options.files"):
        get_engine("wan21_t2v", model=str(original))

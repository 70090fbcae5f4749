"""Write tiny diffusers models in the single-file layouts users download: the original Wan /
ComfyUI key layout, ComfyUI's fp8 "scaled" safetensors, and city96-style GGUF.

Each writer returns the state dict (diffusers names) the engine should end up with after
loading the file: the exact weights for lossless layouts, the dequantized ones for fp8 and GGUF,
so tests can build a reference pipeline holding precisely those weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

# diffusers -> original Wan names: the inverse of diffusers' convert_wan_transformer_to_diffusers
# (its norm2/norm3 swap included), for the plain (non-I2V-CLIP, non-VACE) transformer.
_TO_ORIGINAL = (
    ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
    ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
    ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
    ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
    ("condition_embedder.time_proj", "time_projection.1"),
    (".attn1.", ".self_attn."), (".attn2.", ".cross_attn."), (".to_out.0.", ".o."),
    (".to_q.", ".q."), (".to_k.", ".k."), (".to_v.", ".v."),
    ("ffn.net.0.proj", "ffn.0"), ("ffn.net.2", "ffn.2"), (".norm2.", ".norm3."),
    (".scale_shift_table", ".modulation"), ("proj_out", "head.head"),
)


def wan_original_name(name: str) -> str:
    if name == "scale_shift_table":
        return "head.modulation"
    for old, new in _TO_ORIGINAL:
        name = name.replace(old, new)
    return name


def transformer_state(folder: Path, component: str = "transformer") -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / component / "diffusion_pytorch_model.safetensors"))


def save_original(state: dict, path: Path, prefix: str = "model.diffusion_model.",
                  dtype=None) -> dict:
    """The Wan transformer in the original layout (as ComfyUI's repackaged files)."""
    from safetensors.torch import save_file

    tensors = {prefix + wan_original_name(k): (v if dtype is None else v.to(dtype)).contiguous()
               for k, v in state.items()}
    save_file(tensors, str(path))
    return {k: v if dtype is None else v.to(dtype).float() for k, v in state.items()}


def _fp8_target(name: str, tensor: torch.Tensor) -> bool:
    # ComfyUI's fp8_scaled Wan files: the blocks' linear weights; norms, biases, modulation
    # and embeddings stay in higher precision.
    return name.startswith("blocks.") and name.endswith(".weight") and tensor.ndim == 2


def save_fp8_scaled(state: dict, path: Path, prefix: str = "model.diffusion_model.",
                    per_channel: bool = False) -> dict:
    """ComfyUI's "scaled_fp8" layout: float8_e4m3fn weights, a float32 `scale_weight` per
    weight (absmax / 448), a `scaled_fp8` marker; original Wan names."""
    from safetensors.torch import save_file

    fp8 = torch.float8_e4m3fn
    top = torch.finfo(fp8).max
    tensors, expected = {}, {}
    for name, value in state.items():
        original = prefix + wan_original_name(name)
        if not _fp8_target(name, value):
            tensors[original] = value.contiguous()
            expected[name] = value
            continue
        if per_channel:
            scale = (value.abs().amax(dim=1, keepdim=True) / top).clamp(min=1e-12)
        else:
            scale = (value.abs().max() / top).clamp(min=1e-12).reshape(())
        quantized = (value / scale).to(fp8)
        tensors[original] = quantized.contiguous()
        tensors[original[: -len(".weight")] + ".scale_weight"] = scale.float().contiguous()
        expected[name] = quantized.float() * scale
    tensors[prefix + "scaled_fp8"] = torch.zeros(2, dtype=fp8)
    save_file(tensors, str(path))
    return expected


def t5_llama_name(name: str) -> str:
    """transformers -> llama.cpp names of a T5 encoder (city96's umt5-xxl-encoder GGUFs)."""
    for old, new in (("shared", "token_embd"), ("encoder.", "enc."), (".block.", ".blk."),
                     ("layer.0.SelfAttention.relative_attention_bias", "attn_rel_b"),
                     ("layer.0.SelfAttention.q", "attn_q"), ("layer.0.SelfAttention.k", "attn_k"),
                     ("layer.0.SelfAttention.v", "attn_v"), ("layer.0.SelfAttention.o", "attn_o"),
                     ("layer.0.layer_norm", "attn_norm"), ("layer.1.DenseReluDense.wi_0",
                                                           "ffn_gate"),
                     ("layer.1.DenseReluDense.wi_1", "ffn_up"),
                     ("layer.1.DenseReluDense.wo", "ffn_down"), ("layer.1.layer_norm", "ffn_norm"),
                     ("final_layer_norm", "output_norm")):
        name = name.replace(old, new)
    return name


def save_gguf(state: dict, path: Path, arch: str = "wan", rename=None) -> dict:
    """city96's ComfyUI-GGUF layout: original Wan names without prefix; Q8_0 for 2-D weights
    whose rows fill 32-value blocks, F32 for 1-D, small, `.modulation` and 5-D tensors (the
    patch embedding), F16 for the rest."""
    import gguf
    from gguf import GGMLQuantizationType as Q

    writer = gguf.GGUFWriter(str(path), arch=arch)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    expected = {}
    for name, value in state.items():
        original = (rename or wan_original_name)(name)
        data = value.float().numpy()
        if data.ndim == 2 and data.shape[1] % 32 == 0 \
                and ".modulation" not in original:
            qtype = Q.Q8_0
        elif data.ndim == 1 or data.size <= 1024 or data.ndim > 4 or ".modulation" in original:
            qtype = Q.F32
        else:
            qtype = Q.F16
        raw = gguf.quants.quantize(data, qtype)
        writer.add_tensor(original, raw, raw_dtype=qtype)
        restored = gguf.quants.dequantize(raw, qtype).reshape(data.shape)
        if qtype == Q.Q8_0:  # diffusers multiplies the fp16 block scale in fp16
            restored = restored.astype(np.float16)
        expected[name] = torch.from_numpy(np.ascontiguousarray(restored, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return expected


def save_diffusers_file(state: dict, path: Path, dtype=None) -> dict:
    """A component's state dict in diffusers / transformers names, as one file."""
    from safetensors.torch import save_file

    save_file({k: (v if dtype is None else v.to(dtype)).contiguous() for k, v in state.items()},
              str(path))
    return {k: v if dtype is None else v.to(dtype).float() for k, v in state.items()}


def save_t5_fp8_scaled(folder: Path, path: Path) -> dict:
    """The tiny UMT5 encoder as ComfyUI's umt5_xxl_fp8_e4m3fn_scaled.safetensors: transformers
    names, fp8 linear weights with scale_weight, the scaled_fp8 marker, no tied duplicate."""
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "text_encoder" / "model.safetensors"))
    fp8 = torch.float8_e4m3fn
    top = torch.finfo(fp8).max
    tensors, expected = {}, {}
    for name, value in state.items():
        if name.startswith("encoder.block.") and value.ndim == 2 and "relative" not in name:
            scale = (value.abs().max() / top).reshape(())
            quantized = (value / scale).to(fp8)
            tensors[name] = quantized
            tensors[name[: -len(".weight")] + ".scale_weight"] = scale.float()
            expected[name] = quantized.float() * scale
        else:
            tensors[name] = value.contiguous()
            expected[name] = value
    tensors["scaled_fp8"] = torch.zeros(2, dtype=fp8)
    save_file(tensors, str(path))
    return expected


def tiny_wan_vae_like_original(seed: int = 0):
    """A tiny AutoencoderKLWan with the real Wan 2.1 VAE's block structure (4 levels, 2 res
    blocks each), the structure diffusers' original-layout VAE converter expects."""
    from diffusers import AutoencoderKLWan

    torch.manual_seed(seed)
    return AutoencoderKLWan(base_dim=4, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                            temperal_downsample=[False, True, True])


_RESNET = (("norm1.gamma", "residual.0.gamma"), ("conv1.", "residual.2."),
           ("norm2.gamma", "residual.3.gamma"), ("conv2.", "residual.6."),
           ("conv_shortcut.", "shortcut."))


def _resnet(rest: str) -> str:
    for old, new in _RESNET:
        if rest.startswith(old):
            return new + rest[len(old):]
    return rest


def wan_vae_original_name(name: str) -> str:
    """diffusers -> original Wan VAE names: the inverse of convert_wan_vae_to_diffusers."""
    if name.startswith("quant_conv."):
        return "conv1." + name[len("quant_conv."):]
    if name.startswith("post_quant_conv."):
        return "conv2." + name[len("post_quant_conv."):]
    side, rest = name.split(".", 1)
    for old, new in (("conv_in.", "conv1."), ("norm_out.gamma", "head.0.gamma"),
                     ("conv_out.", "head.2.")):
        if rest.startswith(old):
            return f"{side}.{new}{rest[len(old):]}"
    if rest.startswith("mid_block."):
        kind, index, tail = rest[len("mid_block."):].split(".", 2)
        if kind == "attentions":
            return f"{side}.middle.1.{tail}"
        return f"{side}.middle.{0 if index == '0' else 2}.{_resnet(tail)}"
    if rest.startswith("down_blocks."):
        index, tail = rest[len("down_blocks."):].split(".", 1)
        return f"{side}.downsamples.{index}.{_resnet(tail)}"
    if rest.startswith("up_blocks."):
        block, kind, index, tail = rest[len("up_blocks."):].split(".", 3)
        if kind == "upsamplers":
            return f"{side}.upsamples.{4 * int(block) + 3}.{tail}"
        return f"{side}.upsamples.{4 * int(block) + int(index)}.{_resnet(tail)}"
    raise ValueError(f"no original name for {name}")


def save_vae_original(state: dict, path: Path) -> dict:
    """The Wan VAE as ComfyUI's wan_2.1_vae.safetensors (original names, no prefix)."""
    from safetensors.torch import save_file

    save_file({wan_vae_original_name(k): v.contiguous() for k, v in state.items()}, str(path))
    return dict(state)

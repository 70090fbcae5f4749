"""Loading the single files that engine.diffusers.models.files inspected (inside the model
pool's load): fp8 weights multiplied by their per-tensor scales into the compute dtype, keys
converted by diffusers' single-file converters (offline, with the base folder's config), GGUF
tensors kept quantized by diffusers' GGUF quantizer; the modules go to `from_pretrained` as component overrides."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

from .files import _model_class, _strip, _t5_name
from .headers import _DROP_NAMES, _DROP_SUFFIXES, _SCALE_SUFFIXES, ModelFile

log = logging.getLogger(__name__)


def load_components(files: Mapping[str, ModelFile], base: Path,
                    dtypes: Mapping[str, Any]) -> dict[str, Any]:
    """The modules for `from_pretrained(base, **components)`, one per file."""
    return {c: load_component(mf, base, dtypes[c]) for c, mf in files.items()}


def load_component(mf: ModelFile, base: Path, dtype) -> Any:
    cls = _model_class(mf.library, mf.model_class)
    if mf.library == "diffusers" and mf.format == "gguf":
        model = _load_gguf(cls, mf, base, dtype)
    else:
        model = _load_dense(cls, mf, base / mf.component, dtype)
    left = [n for n, p in model.named_parameters() if p.device.type == "meta"]
    if left:
        raise ValueError(f"{mf.key}={mf.path.name}: {len(left)} weights stayed empty after "
                         f"loading (e.g. {left[0]})")
    return model.eval()


def _load_gguf(cls, mf: ModelFile, base: Path, dtype):
    """GGUF stays quantized: diffusers' GGUF quantizer (GGUFLinear layers dequantize on the
    fly; diffusers' converter maps original names)."""
    from diffusers import GGUFQuantizationConfig
    from diffusers.models.model_loading_utils import load_gguf_checkpoint

    from .source import dtype_keyword

    state = _strip(load_gguf_checkpoint(str(mf.path)), mf.prefix)
    if mf.layout == "diffusers" and mf.keys:
        # Exactly the component's names, so from_single_file does not "convert" them.
        state = {k: v for k, v in state.items() if k in mf.keys}
    return cls.from_single_file(state, config=str(base), subfolder=mf.component,
                                local_files_only=True, **{dtype_keyword(): dtype},
                                quantization_config=GGUFQuantizationConfig(compute_dtype=dtype))


def _load_dense(cls, mf: ModelFile, folder: Path, dtype):
    """Safetensors (and GGUF encoders, dequantized): names converted by diffusers' single-file
    converter where the layout is original, fp8 weights times their scales, each tensor cast
    as `from_pretrained` would (modules the class keeps in fp32 stay fp32)."""
    from accelerate import init_empty_weights

    state = read_gguf_dense(mf) if mf.format == "gguf" else read_tensors(mf)
    if mf.library == "diffusers":
        config = cls.load_config(str(folder))
        if mf.layout == "original":
            from diffusers.loaders.single_file_model import SINGLE_FILE_LOADABLE_CLASSES

            convert = SINGLE_FILE_LOADABLE_CLASSES[mf.model_class]["checkpoint_mapping_fn"]
            state = convert(checkpoint=state, config=dict(config))
        with init_empty_weights():
            model = cls.from_config(config)
    else:
        config = cls.config_class.from_pretrained(str(folder))
        with init_empty_weights():
            model = cls(config)
    keep = _fp32_modules(model, mf.library, dtype)
    state = dequantize_state(state, mf, dtype, keep)
    result = model.load_state_dict(state, strict=False, assign=True)
    if result.unexpected_keys:
        log.warning("%s=%s: %d tensors the %s does not use are ignored (e.g. %s)", mf.key,
                    mf.path.name, len(result.unexpected_keys), mf.model_class,
                    result.unexpected_keys[0])
    if mf.library == "transformers":
        model.tie_weights()
    return model


def _fp32_modules(model, library: str, dtype) -> set[str]:
    """Module names `from_pretrained` keeps in fp32 at this dtype: diffusers always (no
    quantizer), transformers for fp16 (and its `_strict` list for bf16 too)."""
    import torch

    keep = set()
    if library == "diffusers":
        keep |= set(getattr(model, "_keep_in_fp32_modules", None) or ())
    else:
        if dtype == torch.float16:
            keep |= set(getattr(model, "_keep_in_fp32_modules", None) or ())
        if dtype in (torch.float16, torch.bfloat16):
            keep |= set(getattr(model, "_keep_in_fp32_modules_strict", None) or ())
    return keep


def read_tensors(mf: ModelFile) -> dict[str, Any]:
    """A safetensors file's tensors as stored (fp8 weights and their scales side by side),
    the prefix stripped, llama.cpp T5 names mapped, markers and non-float blobs dropped."""
    from safetensors import safe_open

    state: dict[str, Any] = {}
    with safe_open(str(mf.path), framework="pt", device="cpu") as fh:
        for name in fh.keys():
            if mf.prefix and not name.startswith(mf.prefix):
                continue
            stripped = name[len(mf.prefix):]
            if stripped in _DROP_NAMES or stripped.endswith(_DROP_SUFFIXES):
                continue
            tensor = fh.get_tensor(name)
            if tensor.is_floating_point():
                state[_t5_name(stripped) if mf.layout == "llama.cpp" else stripped] = tensor
    if mf.layout == "diffusers" and mf.keys:  # no renames: only the component's own names
        state = {k: v for k, v in state.items() if k in mf.keys or k.endswith(_SCALE_SUFFIXES)}
    return state


def dequantize_state(state: dict[str, Any], mf: ModelFile, dtype, keep: set[str]
                     ) -> dict[str, Any]:
    """ComfyUI fp8 weights times their scales (per tensor or per output channel, in fp32),
    then every tensor in `dtype`, or fp32 inside the `keep` modules; scales dropped. Tensors
    are replaced one by one, so the peak is one model in `dtype` plus one tensor."""
    import torch

    fp8 = {getattr(torch, "float8_e4m3fn", None), getattr(torch, "float8_e5m2", None)} - {None}
    out: dict[str, Any] = {}
    for name in list(state):
        if name.endswith(_SCALE_SUFFIXES):
            continue
        tensor = state.pop(name)
        if tensor.dtype in fp8:
            stem = name[: -len(".weight")] if name.endswith(".weight") else name
            scale = next((state[stem + s] for s in _SCALE_SUFFIXES if stem + s in state), None)
            tensor = _dequantize(tensor, scale, name, mf)
        wanted = torch.float32 if any(part in keep for part in name.split(".")) else dtype
        out[name] = tensor.to(wanted)
    return out


def _dequantize(weight, scale, name: str, mf: ModelFile):
    import torch

    value = weight.to(torch.float32)
    if scale is None:
        return value
    scale = scale.to(torch.float32)
    if scale.numel() == 1:
        return value * scale.reshape(())
    if value.ndim >= 1 and scale.numel() == value.shape[0]:
        return value * scale.reshape(-1, *([1] * (value.ndim - 1)))
    raise ValueError(f"{mf.key}={mf.path.name}: {name} has a scale of shape "
                     f"{tuple(scale.shape)} for a weight of shape {tuple(value.shape)}; only "
                     f"per-tensor and per-channel fp8 scales are supported")


def read_gguf_dense(mf: ModelFile) -> dict[str, Any]:
    """A GGUF text/image encoder dequantized (diffusers' dequantizers: fp16 for the quantized
    types; transformers models have no GGUF quantizer), llama.cpp's T5 names mapped."""
    from diffusers.models.model_loading_utils import load_gguf_checkpoint
    from diffusers.quantizers.gguf.utils import dequantize_gguf_tensor

    state = _strip(load_gguf_checkpoint(str(mf.path)), mf.prefix)
    out = {}
    for name in list(state):
        tensor = state.pop(name)
        out[_t5_name(name) if mf.layout == "llama.cpp" else name] = \
            dequantize_gguf_tensor(tensor)
    return out

"""`engine.options` for every diffusers engine, as one documented dataclass.

Read from conf/engine/<name>.yaml and the command line (`engine.options.offload=model`, or the
short forms `engine.model=...` that flows/settings folds in). Unknown keys and bad values are
rejected here, before anything loads, with the key, the value and what would be valid.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

# Defined with the engine interface (modules this one uses raise it too); re-exported here,
# where the options it reports on live.
from ..base import EngineConfigError  # noqa: F401
from .parallel.config import check_options, parse
from ..suggest import did_you_mean

OFFLOAD = ("none", "model", "sequential", "group", "auto")
# mag_calibrate: MagCache's calibration mode (nothing skipped, ratios recorded): flows.calibrate.
STEP_CACHE = ("none", "first_block", "mag", "mag_calibrate")
# fp8_storage: diffusers' layerwise casting (fp8 weights, compute in dtype); int8 / fp8: torchao.
QUANTIZE = ("none", "fp8_storage", "int8", "fp8")
DTYPES = ("auto", "bf16", "fp16", "fp32")




@dataclass
class DiffusersOptions:
    """How a diffusers engine loads and runs its pipeline.

    model:      a diffusers folder (save_pretrained layout) or a hub id already in the local
                cache; nothing is downloaded.
    revision:   a label for the weights that goes into cache keys instead of the automatic
                fingerprint (the hub commit, or a hash of the folder's configs and file sizes).
    files:      single checkpoint files (ComfyUI/original safetensors, fp8 scaled, GGUF) that
                replace components of `model`: {transformer, transformer_2, vae, text_encoder,
                image_encoder: PATH}; `model` still gives configs, tokenizer, scheduler
                (engine.diffusers.models.files).
    dtype:      auto (bf16 on a GPU, fp32 on the CPU), bf16, fp16 or fp32. Wan's VAE and image
                encoder stay fp32, as the Wan authors recommend.
    device:     auto (cuda when available), cpu, cuda, cuda:N.
    offload:    none | model (whole components move to the GPU when used) | sequential (layer
                by layer: least memory, slowest) | group (blocks stream with CUDA streams) |
                auto (the fastest that fits `vram_gb`: engine.diffusers.accel.fit_offload).
    vram_gb:    GPU memory `offload: auto` may plan for; None: the GPU's total memory.
    vae_tiling: decode in tiles: less memory at high resolutions, near-identical pixels.
    attention_backend: auto (the fastest exact kernel that runs here for the model's head
                size: flash-attention 3 > 2 > cuDNN > PyTorch SDPA; diffusers.attention), or a
                diffusers backend name (flash, sage, _native_cudnn, native, ...). Quantized
                attention (sage*) changes pixels, so it goes into segment keys; exact ones don't.
    quantize:   none | fp8_storage (fp8 weights cast up per layer: ~half the memory of bf16) |
                int8 (torchao weight-only int8) | fp8 (torchao fp8 matmuls; Ada/Hopper GPUs).
                All change pixels slightly and are in segment keys.
    step_cache: none | first_block (skip the rest of the network when the first block's output
                barely changes) | mag (MagCache; ratios from `step_cache_ratios` or the file
                `python -m flows.calibrate` writes for the model).
    step_cache_threshold: the cache's threshold (first_block 0.05, mag 0.06 by default).
    step_cache_ratios: MagCache ratios: a list of numbers, or a calibration JSON file; None:
                the calibration file for this model in the calibration folder (flows.calibrate).
    compile:    torch.compile the denoiser: its repeated blocks where the model declares them,
                else the whole model; on the CPU too (inductor). The first segment pays it.
    pool_budget_gb: memory the model pool may hold before unloading least recently used
                pipelines; None: everything stays loaded.
    camera_prompt: append the camera move as words ("the camera pans left slowly") to prompts.
    max_sequence_length: text encoder tokens; None uses the pipeline's default.
    parallel:   one generation over several GPUs (diffusers' context parallelism; processes
                started by torchrun): {ulysses: N, ring: M} with N x M = the number of
                processes; None or all 1: off. Wan and LTX transformers only; no offload or
                step cache with it; cfg (CFG parallelism) only 1. See engine.diffusers.parallel.
    """

    model: str | None = None
    revision: str | None = None
    files: dict[str, str | None] = field(default_factory=dict)
    dtype: str = "auto"
    device: str = "auto"
    offload: str = "none"
    vram_gb: float | None = None
    vae_tiling: bool = False
    attention_backend: str | None = "auto"
    quantize: str = "none"
    step_cache: str = "none"
    step_cache_threshold: float | None = None
    step_cache_ratios: list[float] | str | None = None
    compile: bool = False
    pool_budget_gb: float | None = None
    camera_prompt: bool = True
    max_sequence_length: int | None = None
    parallel: Any = None  # engine.diffusers.parallel.config.ParallelConfig after _check
    extra: dict[str, Any] = field(default_factory=dict)  # family-specific (see each engine)

    @classmethod
    def from_mapping(cls, engine: str, options: Mapping[str, Any],
                     extra_keys: tuple[str, ...] = ()) -> "DiffusersOptions":
        known = [f.name for f in dataclasses.fields(cls) if f.name != "extra"]
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in dict(options).items():
            if key in known:
                values[key] = value
            elif key in extra_keys:
                extra[key] = value
            else:
                hint = did_you_mean(key, known + list(extra_keys))
                raise EngineConfigError(
                    f"engine.options.{key}: unknown option for engine {engine!r}{hint} "
                    f"(options: {', '.join(known + list(extra_keys))})")
        opts = cls(**values, extra=extra)
        opts._check(engine)
        return opts

    def _check(self, engine: str) -> None:
        def bad(key: str, value: Any, valid: str) -> EngineConfigError:
            return EngineConfigError(f"engine.options.{key}={value!r} for engine {engine!r}: "
                                     f"expected {valid}")

        if self.dtype not in DTYPES:
            raise bad("dtype", self.dtype, " | ".join(DTYPES))
        if self.offload not in OFFLOAD:
            raise bad("offload", self.offload, " | ".join(OFFLOAD))
        if self.step_cache not in STEP_CACHE:
            raise bad("step_cache", self.step_cache, " | ".join(STEP_CACHE))
        if self.quantize not in QUANTIZE:
            raise bad("quantize", self.quantize, " | ".join(QUANTIZE))
        backend = self.attention_backend
        if backend is not None and not (isinstance(backend, str) and backend.strip()):
            raise bad("attention_backend", backend, "auto or a diffusers attention backend name")
        if not isinstance(self.device, str) or not (
                self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise bad("device", self.device, "auto, cpu, cuda or cuda:N")
        for key in ("vae_tiling", "compile", "camera_prompt"):
            if not isinstance(getattr(self, key), bool):
                raise bad(key, getattr(self, key), "true or false")
        threshold = self.step_cache_threshold
        if threshold is not None and not (isinstance(threshold, (int, float)) and 0 < threshold < 1):
            raise bad("step_cache_threshold", threshold, "a number between 0 and 1")
        ratios = self.step_cache_ratios
        if ratios is not None and not isinstance(ratios, str) and not (
                isinstance(ratios, (list, tuple)) and ratios and
                all(isinstance(r, (int, float)) and r > 0 for r in ratios)):
            raise bad("step_cache_ratios", ratios,
                      "a list of positive numbers or the path of a calibration file written "
                      "by `python -m flows.calibrate`")
        vram = self.vram_gb
        if vram is not None and (isinstance(vram, bool) or not isinstance(vram, (int, float))
                                 or vram <= 0):
            raise bad("vram_gb", vram, "a positive number of GiB (e.g. 24)")
        budget = self.pool_budget_gb
        if budget is not None and not (isinstance(budget, (int, float)) and budget > 0):
            raise bad("pool_budget_gb", budget, "a positive number of GiB")
        length = self.max_sequence_length
        if length is not None and not (isinstance(length, int) and 1 <= length <= 4096):
            raise bad("max_sequence_length", length, "a whole number of tokens, 1..4096")
        files = self.files if self.files is not None else {}
        if not isinstance(files, Mapping) or not all(
                isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in files.items()):
            raise bad("files", files, "a mapping of component name (transformer, transformer_2, "
                      "vae, text_encoder, image_encoder) to a .safetensors or .gguf path")
        self.files = {k: v for k, v in files.items() if v not in (None, "")}

        self.parallel = parse(self.parallel, engine)
        if self.parallel is not None:
            check_options(self.parallel, self.offload, self.step_cache, self.device, engine)

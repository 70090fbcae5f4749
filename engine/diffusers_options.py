"""`engine.options` for every diffusers engine, as one documented dataclass.

Read from conf/engine/<name>.yaml and the command line (`engine.options.offload=model`, or the
short forms `engine.model=...` that flows/settings folds in). Unknown keys and bad values are
rejected here, before anything loads, with the key, the value and what would be valid.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from typing import Any, Mapping

OFFLOAD = ("none", "model", "sequential", "group")
STEP_CACHE = ("none", "first_block", "mag")
DTYPES = ("auto", "bf16", "fp16", "fp32")


class EngineConfigError(ValueError):
    """A bad engine option; the message names the key, the value and the fix."""


@dataclass
class DiffusersOptions:
    """How a diffusers engine loads and runs its pipeline.

    model:      a diffusers folder (save_pretrained layout) or a hub id already in the local
                cache; nothing is downloaded.
    revision:   a label for the weights that goes into cache keys instead of the automatic
                fingerprint (the hub commit, or a hash of the folder's configs and file sizes).
    dtype:      auto (bf16 on a GPU, fp32 on the CPU), bf16, fp16 or fp32. Wan's VAE and image
                encoder stay fp32, as the Wan authors recommend.
    device:     auto (cuda when available), cpu, cuda, cuda:N.
    offload:    none | model (whole components move to the GPU when used) | sequential (layer
                by layer: least memory, slowest) | group (blocks stream with CUDA streams).
    vae_tiling: decode in tiles: less memory at high resolutions, near-identical pixels.
    attention_backend: a diffusers attention backend for the transformer (flash, sage,
                _native_cudnn, native, ...); None keeps the default (PyTorch SDPA).
    step_cache: none | first_block (skip the rest of the network when the first block's output
                barely changes) | mag (MagCache; needs `step_cache_ratios` for the model).
    step_cache_threshold: the cache's threshold (first_block 0.05, mag 0.06 by default).
    compile:    torch.compile the transformer's repeated blocks (first segment pays the compile).
    pool_budget_gb: memory the model pool may hold before unloading least recently used
                pipelines; None: everything stays loaded.
    camera_prompt: append the camera move as words ("the camera pans left slowly") to prompts.
    max_sequence_length: text encoder tokens; None uses the pipeline's default.
    """

    model: str | None = None
    revision: str | None = None
    dtype: str = "auto"
    device: str = "auto"
    offload: str = "none"
    vae_tiling: bool = False
    attention_backend: str | None = None
    step_cache: str = "none"
    step_cache_threshold: float | None = None
    step_cache_ratios: list[float] | None = None
    compile: bool = False
    pool_budget_gb: float | None = None
    camera_prompt: bool = True
    max_sequence_length: int | None = None
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
                close = difflib.get_close_matches(key, known + list(extra_keys), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
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
        if not isinstance(self.device, str) or not (
                self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise bad("device", self.device, "auto, cpu, cuda or cuda:N")
        for key in ("vae_tiling", "compile", "camera_prompt"):
            if not isinstance(getattr(self, key), bool):
                raise bad(key, getattr(self, key), "true or false")
        threshold = self.step_cache_threshold
        if threshold is not None and not (isinstance(threshold, (int, float)) and 0 < threshold < 1):
            raise bad("step_cache_threshold", threshold, "a number between 0 and 1")
        if self.step_cache == "mag" and not self.step_cache_ratios:
            raise bad("step_cache_ratios", self.step_cache_ratios,
                      "the model's MagCache ratios (a list of numbers) when step_cache=mag; "
                      "calibrate them once with diffusers' MagCacheConfig(calibrate=True)")
        budget = self.pool_budget_gb
        if budget is not None and not (isinstance(budget, (int, float)) and budget > 0):
            raise bad("pool_budget_gb", budget, "a positive number of GiB")
        length = self.max_sequence_length
        if length is not None and not (isinstance(length, int) and 1 <= length <= 4096):
            raise bad("max_sequence_length", length, "a whole number of tokens, 1..4096")

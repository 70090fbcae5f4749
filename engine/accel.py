"""Speed and memory options of the diffusers engines, applied once when a pipeline loads, and
the out-of-memory degrade ladder applied to a resident pipeline when a segment runs out.

Each option maps onto the diffusers feature its docs describe: enable_model_cpu_offload,
enable_sequential_cpu_offload, enable_group_offload, vae.enable_tiling, set_attention_backend,
enable_cache(FirstBlockCacheConfig / MagCacheConfig), compile_repeated_blocks. Options that need
a GPU (offload, compile) are skipped on the CPU with a log line, so one config serves both.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from .diffusers_options import DiffusersOptions, EngineConfigError

log = logging.getLogger(__name__)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EngineConfigError(f"engine.options.device={device!r}: no CUDA GPU is visible "
                                f"(CUDA_VISIBLE_DEVICES={_visible()!r}); use device=cpu or auto")
    return device


def _visible() -> str | None:
    import os

    return os.environ.get("CUDA_VISIBLE_DEVICES")


def resolve_dtype(dtype: str, device: str) -> str:
    """bf16 on a GPU and fp32 on the CPU for `auto` (CPU bf16 kernels are slow)."""
    if dtype == "auto":
        return "bf16" if device.startswith("cuda") else "fp32"
    return dtype


def denoiser_modules(pipe) -> list[Any]:
    return [m for m in (getattr(pipe, n, None) for n in ("transformer", "transformer_2", "unet"))
            if m is not None]


def _offload(pipe, mode: str, device: str) -> None:
    if mode == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif mode == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    elif mode == "group":
        import torch

        pipe.enable_group_offload(onload_device=torch.device(device),
                                  offload_device=torch.device("cpu"),
                                  offload_type="leaf_level", use_stream=True)


def _step_cache(pipe, options: DiffusersOptions) -> None:
    from diffusers import FirstBlockCacheConfig, MagCacheConfig

    threshold = options.step_cache_threshold
    for module in denoiser_modules(pipe):
        if not hasattr(module, "enable_cache"):
            raise EngineConfigError(f"engine.options.step_cache={options.step_cache!r}: "
                                    f"{type(module).__name__} does not support step caching")
        if options.step_cache == "first_block":
            module.enable_cache(FirstBlockCacheConfig(threshold=threshold or 0.05))
        else:
            module.enable_cache(MagCacheConfig(threshold=threshold or 0.06,
                                               mag_ratios=list(options.step_cache_ratios or [])))


def apply_load_options(pipe, options: DiffusersOptions, device: str) -> None:
    """Place the pipeline and apply the speed/memory options, in the order diffusers expects:
    attention and caching hooks first, then offload (which installs its own hooks), compile
    last."""
    on_gpu = device.startswith("cuda")
    if options.attention_backend:
        for module in denoiser_modules(pipe):
            try:
                module.set_attention_backend(options.attention_backend)
            except (ValueError, RuntimeError, ImportError) as exc:
                raise EngineConfigError(
                    f"engine.options.attention_backend={options.attention_backend!r}: {exc}"
                ) from None
    if options.step_cache != "none":
        _step_cache(pipe, options)
    if options.vae_tiling:
        enable_vae_tiling(pipe)
    if options.offload != "none" and on_gpu:
        _offload(pipe, options.offload, device)
    else:
        if options.offload != "none":
            log.info("offload=%s ignored on the CPU", options.offload)
        pipe.to(device)
    if options.compile:
        if not on_gpu:
            log.info("compile ignored on the CPU")
        else:
            for module in denoiser_modules(pipe):
                if hasattr(module, "compile_repeated_blocks"):
                    module.compile_repeated_blocks(fullgraph=True)
                else:
                    module.compile(fullgraph=True)


def enable_vae_tiling(pipe) -> bool:
    vae = getattr(pipe, "vae", None)
    if vae is not None and hasattr(vae, "enable_tiling"):
        vae.enable_tiling()
        return True
    return False


@dataclass(frozen=True)
class DegradeStep:
    name: str
    describe: str
    apply: Callable[[Any, str], None]


def _free_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _tiling(pipe, _device: str) -> None:
    _free_cuda()
    enable_vae_tiling(pipe)


def _smaller_decode_chunks(pipe, _device: str) -> None:
    # Read by engines that decode in chunks (SVD's decode_chunk_size).
    _free_cuda()
    pipe._reelforge_decode_chunk = max(1, getattr(pipe, "_reelforge_decode_chunk", 8) // 2)


def _move_offload(mode: str) -> Callable[[Any, str], None]:
    def apply(pipe, device: str) -> None:
        if hasattr(pipe, "remove_all_hooks"):
            pipe.remove_all_hooks()  # an earlier offload's hooks
        pipe.to("cpu")  # offload hooks expect the weights on the CPU
        _free_cuda()
        _offload(pipe, mode, device)
    return apply


def degrade_steps(options: DiffusersOptions, device: str) -> list[DegradeStep]:
    """The out-of-memory ladder for these options: cheapest first, each applied once."""
    steps: list[DegradeStep] = []
    if not options.vae_tiling:
        steps.append(DegradeStep("vae_tiling", "enabled VAE tiling", _tiling))
    if device.startswith("cuda"):
        if options.offload in ("none",):
            steps.append(DegradeStep("offload_model", "moved to model CPU offload",
                                     _move_offload("model")))
        if options.offload in ("none", "model", "group"):
            steps.append(DegradeStep("offload_sequential", "moved to sequential CPU offload",
                                     _move_offload("sequential")))
    steps.append(DegradeStep("decode_chunks", "halved the VAE decode chunk",
                             _smaller_decode_chunks))
    return steps

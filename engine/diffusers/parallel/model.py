"""Context parallelism on a loaded pipeline: the attention kernel that has a context-parallel
path, diffusers' `enable_parallelism`, and the CPU (gloo) workaround. The processes that run it
together are engine.diffusers.parallel."""

from __future__ import annotations

import functools
import logging
from typing import Any

from ...base import EngineConfigError
from .config import ParallelConfig

log = logging.getLogger(__name__)

# Context-parallel attention kernels auto picks from, fastest first. Ring needs the kernel to
# return the log-sum-exp (PyTorch SDPA does not); diffusers' `_flash_3` has no context-parallel
# path (only `_flash_3_hub`, which downloads kernels), so auto never picks it here.
ULYSSES_BACKENDS = ("flash", "_native_cudnn", "native")
RING_BACKENDS = ("flash", "_native_cudnn", "_native_flash")
NO_LSE = ("native", "_native_npu")


def _cp_backends() -> set[str]:
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    return set(_AttentionBackendRegistry._supports_context_parallel)


def choose_backend(requested: str | None, module: Any, device: str, dtype: Any,
                   config: ParallelConfig) -> str:
    """The attention kernel for a context-parallel denoiser: `requested` when it has a
    context-parallel path (and returns the log-sum-exp, for ring), or for auto the fastest
    such exact kernel that runs here."""
    from .. import attention
    supported = _cp_backends()
    ring = config.ring > 1
    if requested not in (None, attention.AUTO):
        name = str(requested)
        if name not in supported or (ring and name in NO_LSE):
            usable = sorted(b for b in supported if not (ring and b in NO_LSE))
            raise EngineConfigError(
                f"engine.options.attention_backend={name!r} with engine.options.parallel="
                f"{{{config.describe()}}}: diffusers 0.42.1 has no "
                f"{'ring ' if ring else ''}context-parallel path for it; use auto or one of "
                f"{', '.join(usable)}")
        return name
    candidates = RING_BACKENDS if ring else ULYSSES_BACKENDS
    if device.startswith("cuda"):
        dim = attention.head_dim(module) or 128
        for name in candidates:
            if name in supported and (name == attention.NATIVE or
                                      attention.probe(name, dim, dtype, device) is None):
                return name
    elif not ring:
        return attention.NATIVE
    raise EngineConfigError(
        f"engine.options.parallel.ring={config.ring} on {device!r}: ring attention needs a "
        f"kernel that returns the log-sum-exp ({', '.join(RING_BACKENDS)}), and none runs here "
        f"(PyTorch SDPA does not return it); use ulysses instead of ring"
        + ("" if device.startswith("cuda") else ", or a GPU"))


def _resolve_on_cpu(module, config):
    """diffusers' `_resolve_parallel_config` with the CPU as the device (its own divides by
    torch.accelerator.device_count(), which is 0 without an accelerator)."""
    import torch
    import torch.distributed as dist
    from diffusers import ContextParallelConfig
    from diffusers.models._modeling_parallel import ParallelConfig as DiffusersParallelConfig

    if isinstance(config, ContextParallelConfig):
        config = DiffusersParallelConfig(context_parallel_config=config)
    config.setup(dist.get_rank(), dist.get_world_size(), torch.device("cpu"),
                 mesh=config.context_parallel_config.mesh)
    module._parallel_config = config
    return config


def denoisers_with_plan(pipe) -> list[tuple[str, Any]]:
    found = [(n, getattr(pipe, n, None)) for n in ("transformer", "transformer_2", "unet")]
    found = [(n, m) for n, m in found if m is not None]
    missing = [f"{n} ({type(m).__name__})" for n, m in found
               if getattr(m, "_cp_plan", None) is None]
    if missing or not found:
        from ...registry import engines_where  # the registry imports the engine families

        able = engines_where(lambda spec: spec.context_parallel)
        raise EngineConfigError(
            f"engine.options.parallel: {', '.join(missing) or type(pipe).__name__} has no "
            f"context-parallel plan in diffusers 0.42.1; it works for the engines "
            f"{', '.join(able)}; drop parallel for this engine")
    return found


def apply_parallel(pipe, config: ParallelConfig, attention_backend: str | None,
                   device: str, report: Any, sess: Any) -> None:
    """Context parallelism on every denoiser of a loaded, placed (and maybe compiled) pipeline:
    a context-parallel attention kernel, then diffusers' `enable_parallelism` with the device
    mesh of `sess` (engine.diffusers.parallel.Session, shared by every load in the process)."""
    from diffusers import ContextParallelConfig

    if device.split(":")[0] != sess.device_type:
        raise EngineConfigError(
            f"engine.options.device={device!r} with engine.options.parallel: the processes "
            f"were started on {sess.device_type} devices; set device=auto")
    for _name, module in denoisers_with_plan(pipe):
        heads = getattr(module.config, "num_attention_heads", None)
        if config.ulysses > 1 and not config.anything and isinstance(heads, int) \
                and heads % config.ulysses:
            raise EngineConfigError(
                f"engine.options.parallel.ulysses={config.ulysses}: {type(module).__name__} "
                f"has {heads} attention heads, which Ulysses cannot split {config.ulysses} "
                f"ways; use a divisor of {heads}, add ring (ulysses x ring), or set "
                f"anything: true")
        dtype = next((p.dtype for p in module.parameters()), None)
        backend = choose_backend(attention_backend, module, device, dtype, config)
        module.set_attention_backend(backend)
        report.attention = backend
        cp = ContextParallelConfig(
            ulysses_degree=config.ulysses, ring_degree=config.ring, mesh=sess.mesh(config),
            ulysses_anything=config.anything and config.ulysses > 1,
            ring_anything=config.anything and config.ring > 1)
        if not device.startswith("cuda"):
            module._resolve_parallel_config = functools.partial(_resolve_on_cpu, module)
        try:
            module.enable_parallelism(config=cp)
        except (ValueError, RuntimeError) as exc:
            raise EngineConfigError(f"engine.options.parallel={{{config.describe()}}}: "
                                    f"{exc}") from None
    note = (f"parallel: {config.describe()} over {config.size} processes (rank "
            f"{sess.launch.rank}, attention {report.attention})")
    report.notes.append(note)
    log.info(note)

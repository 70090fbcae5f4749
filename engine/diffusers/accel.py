"""Speed and memory options of the diffusers engines, applied once when a pipeline loads, and
the out-of-memory degrade ladder applied to a resident pipeline when a segment runs out.

Each option maps onto the diffusers feature its docs describe: enable_model_cpu_offload,
enable_sequential_cpu_offload, enable_group_offload, vae.enable_tiling, set_attention_backend,
enable_cache(FirstBlockCacheConfig / MagCacheConfig), enable_layerwise_casting, torchao's
quantize_, compile_repeated_blocks. Offload needs a GPU and is skipped on the CPU with a log line;
compile runs on the CPU too (inductor), so the path a GPU user turns on is the one tests cover.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from . import attention
from .step_cache import apply_step_cache, denoiser_modules
from .options import DiffusersOptions, EngineConfigError
from .parallel.session import apply_parallel

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


def _offload(pipe, mode: str, device: str) -> None:
    if mode == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif mode == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    elif mode == "group":
        import torch

        # On the CPU both devices are the CPU: no memory is saved, but the same hooks run, so
        # the group-offload path (with compile, with step caches) is exercised without a GPU.
        pipe.enable_group_offload(onload_device=torch.device(device),
                                  offload_device=torch.device("cpu"),
                                  offload_type="leaf_level",
                                  use_stream=device.startswith("cuda"))


GIB = 2**30
# Activations and the VAE decode at 480p x 81 frames need a few GiB beside the weights.
OFFLOAD_HEADROOM = 6 * GIB
QUANTIZED_SCALE = {"none": 1.0, "fp8_storage": 0.5, "int8": 0.5, "fp8": 0.5}  # vs bf16 weights


def fit_offload(component_bytes: dict[str, int], denoisers: tuple[str, ...], quantize: str,
                vram_bytes: int) -> tuple[str, str]:
    """`offload: auto`: the fastest offload that fits `vram_bytes` of GPU memory, with why.
    Denoiser weights shrink by the quantization (bf16 checkpoints assumed); the others (text
    encoder, VAE) keep their size. Everything resident -> none; the largest component at a
    time -> model; blocks streamed (needs ~8 GiB for activations) -> group; else sequential."""
    scale = QUANTIZED_SCALE.get(quantize, 1.0)
    sizes = {c: int(b * scale) if c in denoisers else int(b) for c, b in component_bytes.items()}
    total, largest = sum(sizes.values()), max(sizes.values(), default=0)
    budget = f"{vram_bytes / GIB:.0f} GiB"
    if total + OFFLOAD_HEADROOM <= vram_bytes:
        return "none", f"all weights ({total / GIB:.1f} GiB) fit {budget}"
    if largest + OFFLOAD_HEADROOM <= vram_bytes:
        return "model", (f"the largest component ({largest / GIB:.1f} GiB) fits {budget}, "
                         f"not all {total / GIB:.1f} GiB")
    if vram_bytes >= 8 * GIB:
        return "group", f"the largest component ({largest / GIB:.1f} GiB) exceeds {budget}"
    return "sequential", f"{budget} is below the 8 GiB group offload needs"


def vram_budget(options: DiffusersOptions, device: str) -> int | None:
    """engine.options.vram_gb, else the GPU's memory; None on the CPU."""
    if options.vram_gb is not None:
        return int(options.vram_gb * GIB)
    if not device.startswith("cuda"):
        return None
    import torch

    return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)


@dataclass
class LoadReport:
    """What `apply_load_options` actually did, for the log and the manifest."""

    attention: str = "native"
    compile: str = "off"      # off | regional | whole | skipped (<why>)
    fullgraph: bool = False
    quantize: str = "none"
    offload: str = "none"
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"attention": self.attention, "compile": self.compile,
                "fullgraph": self.fullgraph, "quantize": self.quantize,
                "offload": self.offload, "notes": list(self.notes)}


def _set_attention(pipe, options: DiffusersOptions, device: str, report: LoadReport) -> None:
    for module in denoiser_modules(pipe):
        dtype = next((p.dtype for p in module.parameters()), None)
        backend = attention.choose(options.attention_backend, module, device, dtype)
        report.attention = backend
        if backend == attention.NATIVE and options.attention_backend in (None, attention.AUTO):
            continue  # diffusers' default already is SDPA; nothing to set
        if not hasattr(module, "set_attention_backend"):
            raise EngineConfigError(
                f"engine.options.attention_backend={options.attention_backend!r}: "
                f"{type(module).__name__} cannot switch attention backends; use auto")
        try:
            module.set_attention_backend(backend)
        except (ValueError, RuntimeError, ImportError) as exc:
            raise EngineConfigError(
                f"engine.options.attention_backend={options.attention_backend!r}: {exc}"
            ) from None


def _quantize(pipe, options: DiffusersOptions, device: str, report: LoadReport) -> None:
    """fp8_storage: weights stored in fp8, each layer cast up to the compute dtype when it runs
    (diffusers' layerwise casting; about half the memory of bf16). int8 / fp8: torchao's
    weight-only int8 or dynamic fp8 (activations and weights) linear layers."""
    import torch

    mode = options.quantize
    report.quantize = mode
    for module in denoiser_modules(pipe):
        if mode == "fp8_storage":
            # The model's dtype, not its first parameter's: Wan registers scale_shift_table
            # first and keeps it in fp32, and computing in fp32 fed fp32 latents to the bf16
            # patch embedding (which layerwise casting skips): a dtype error on every GPU.
            compute = getattr(module, "dtype", None) or next(p.dtype for p in module.parameters())
            module.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn,
                                            compute_dtype=compute)
            continue
        try:
            from torchao.quantization import quantize_
        except ImportError:
            raise EngineConfigError(
                f"engine.options.quantize={mode!r} needs torchao: pip install 'torchao>=0.12' "
                f"(or use quantize=fp8_storage, which needs nothing extra)") from None
        if mode == "int8":
            from torchao.quantization import Int8WeightOnlyConfig

            quantize_(module, Int8WeightOnlyConfig())
        else:  # fp8: tensor cores with fp8 (Ada / Hopper and newer)
            if not device.startswith("cuda") or torch.cuda.get_device_capability(device) < (8, 9):
                raise EngineConfigError(
                    f"engine.options.quantize='fp8' needs a GPU with fp8 (compute capability "
                    f"8.9+: L4, L40, 4090, H100, H200); this device is {device!r}. Use "
                    f"quantize=int8 or quantize=fp8_storage")
            from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow

            layers = fp8_layers(module)
            if not layers:
                raise EngineConfigError(
                    f"engine.options.quantize='fp8' found no bf16 linear layer to quantize in "
                    f"{type(module).__name__} (dtype {module.dtype}); set engine.options.dtype=bf16 "
                    f"or use quantize=int8")
            quantize_(module, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()),
                      filter_fn=lambda _m, fqn, _names=frozenset(layers): fqn in _names)
            report.notes.append(f"fp8: {len(layers)} of {_count_linear(module)} linear layers in "
                                f"{type(module).__name__} (the rest stay in their dtype)")


def fp8_layers(module) -> list[str]:
    """The linear layers fp8 (torchao, per-row scales) can take: bf16 weights (its per-row
    kernels take nothing else, and models keep some layers in fp32 on purpose: Wan's time
    embedder) with both sizes multiples of 16 (what the fp8 tensor-core GEMM needs)."""
    import torch

    return [name for name, layer in module.named_modules()
            if isinstance(layer, torch.nn.Linear) and layer.weight.dtype == torch.bfloat16
            and layer.in_features % 16 == 0 and layer.out_features % 16 == 0]


def _count_linear(module) -> int:
    import torch

    return sum(isinstance(layer, torch.nn.Linear) for layer in module.modules())


def compiler_available(device: str) -> str | None:
    """None when torch.compile can build kernels for `device`, else why not. Inductor needs a
    C++ compiler on the CPU (a GPU build of torch brings Triton for CUDA)."""
    import shutil

    if device.startswith("cuda"):
        return None
    if not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        return "no C++ compiler on PATH (inductor needs one on the CPU)"
    return None


def repeated_blocks(module) -> list[Any]:
    """The model's repeated transformer blocks: the classes it declares in `_repeated_blocks`
    (Wan, Hunyuan, LTX), else the members of a block list diffusers' hooks recognise
    (`transformer_blocks`, `blocks`, ...) when they share one class (CogVideoX declares none
    but has one). Empty for models without one (SVD's UNet): those compile whole."""
    import torch
    from diffusers.hooks._common import _ALL_TRANSFORMER_BLOCK_IDENTIFIERS

    declared = set(getattr(module, "_repeated_blocks", None) or ())
    if declared:
        return [m for m in module.modules() if type(m).__name__ in declared]
    for name, child in module.named_children():
        if name in _ALL_TRANSFORMER_BLOCK_IDENTIFIERS and isinstance(child, torch.nn.ModuleList) \
                and len(child) >= 1 and len({type(b) for b in child}) == 1:
            return list(child)
    return []


def _compile_blocks(pipe, options: DiffusersOptions, device: str, report: LoadReport) -> list:
    """Regional compile, done before any step-cache hook is installed: each repeated block's
    own forward is compiled (lazily: traced at the first call) and the step-cache hooks, added
    after, wrap the compiled forward from outside. So the hooks' Python bookkeeping is never
    traced and one graph serves every block; fullgraph holds unless leaf-level hooks (group
    offload, fp8 storage casting) sit inside the blocks. Returns the denoisers with no repeated
    blocks, compiled whole at the end."""
    import torch

    why = compiler_available(device)
    if why is not None:
        report.compile = f"skipped ({why})"
        log.warning("compile skipped: %s", why)
        return []
    if options.quantize == "fp8_storage":
        # Layerwise casting hooks every layer inside the blocks: the traced blocks break at each
        # and recompile past dynamo's limit (measured on the tiny Wan), so compile gains nothing.
        report.compile = "skipped (quantize=fp8_storage casts each layer in a Python hook)"
        log.warning("compile skipped: %s", report.compile)
        return []
    # Group offload hooks sit inside the blocks; kernels other than PyTorch's and the
    # flash-attention custom ops (Sage, xformers, ...) are opaque Python calls to dynamo.
    report.fullgraph = options.offload != "group" and attention.traceable(
        options.attention_backend)
    whole = []
    for module in denoiser_modules(pipe):
        blocks = repeated_blocks(module)
        if not blocks:
            whole.append(module)
            continue
        for block in blocks:
            block.forward = torch.compile(block.forward, fullgraph=report.fullgraph)
        report.compile = "regional"
    return whole


def _compile_whole(modules: list, report: LoadReport) -> None:
    """Whole-model compile, after all hooks; never fullgraph, since hooks and whatever Python a
    model's top level holds (SVD's UNet) are in the traced region and must be allowed to break."""
    for module in modules:
        module.compile(fullgraph=False)
    if modules:
        report.fullgraph = False
        report.compile = "whole" if report.compile == "off" else f"{report.compile}+whole"


def apply_load_options(pipe, options: DiffusersOptions, device: str) -> LoadReport:
    """Place the pipeline and apply the speed/memory options: quantization; the regional
    compile of the repeated blocks (before any hook, so hooks stay outside the graphs); step
    caches; offload (which installs its own hooks); the attention backend (probed on the
    device the model runs on), or with `parallel` a context-parallel one and diffusers'
    enable_parallelism (engine.diffusers.parallel: its split hooks wrap the compiled blocks, since
    compiling them after fails with fullgraph); a whole-model compile last, where there are
    no blocks."""
    on_gpu = device.startswith("cuda")
    # Group offload also runs on the CPU (both devices the CPU); model / sequential offload
    # need an accelerator (accelerate's hooks move weights to one).
    offload = options.offload != "none" and (on_gpu or options.offload == "group")
    report = LoadReport(offload=options.offload if offload else "none")
    if options.offload != "none" and not offload:
        report.notes.append(f"offload={options.offload} ignored on the CPU")
        log.info("offload=%s ignored on the CPU", options.offload)
    if not offload:
        pipe.to(device)  # quantize on the device the weights will live on
    if options.quantize != "none":
        _quantize(pipe, options, device, report)
    whole = _compile_blocks(pipe, options, device, report) if options.compile else []
    if options.step_cache != "none":
        apply_step_cache(pipe, options)
    if options.vae_tiling:
        enable_vae_tiling(pipe)
    if offload:
        _offload(pipe, options.offload, device)
    # After placement: `auto` probes kernels on the device the model runs on.
    if options.parallel is None:
        _set_attention(pipe, options, device, report)
    else:  # a context-parallel kernel, then the split hooks, around the compiled blocks
        apply_parallel(pipe, options.parallel, options.attention_backend, device, report)
    _compile_whole(whole, report)
    if options.compile:
        log.info("compile: %s (fullgraph=%s); the first segment pays the compile",
                 report.compile, report.fullgraph)
    return report


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
    if options.parallel is not None:
        return steps  # a step on rank 0 alone would put the ranks out of step
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

"""Attention backends: which ones change pixels, which are installed here, and `auto`.

diffusers dispatches attention to one of several kernels (`set_attention_backend`). They fall in
two kinds, and the difference matters for the content cache:

- exact kernels (flash-attention 2/3, cuDNN, PyTorch SDPA) compute the same softmax attention in
  the same precision; their outputs differ only by floating-point summation order, like two runs
  of SDPA on different GPUs. They are speed-only: not in the segment key.
- quantized kernels (SageAttention's int8 QK / fp8 PV) approximate attention at lower precision
  and change pixels visibly: the backend name goes into the segment key.

`auto` (the default) picks the fastest *exact* backend that is installed and actually runs for
the model's head size, dtype and device, so turning it on, or installing flash-attn later, never
invalidates a cache. Quantized attention is opt-in by name.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

AUTO = "auto"
NATIVE = "native"  # PyTorch scaled_dot_product_attention (diffusers' default)
# Exact backends, fastest first on Hopper/Ampere (flash-attention 3 is Hopper-only).
EXACT_PREFERENCE = ("_flash_3", "flash", "_native_cudnn", NATIVE)
_QUANTIZED_MARKERS = ("sage", "fp8", "int8")


# Backends torch.compile traces with fullgraph: PyTorch's own kernels and flash-attention,
# which registers its kernels as torch custom ops (diffusers wraps flash-attention 3 likewise).
# `auto` only ever picks from these.
_TRACEABLE = frozenset(EXACT_PREFERENCE) | {"_native_flash", "_native_efficient",
                                            "_native_math", "flex"}


def traceable(backend: str | None) -> bool:
    return backend in (None, AUTO) or backend in _TRACEABLE


def changes_pixels(backend: str | None) -> bool:
    """True for quantized attention (Sage, fp8): such a backend belongs in the segment key."""
    return bool(backend) and any(m in str(backend).lower() for m in _QUANTIZED_MARKERS)


def key_value(backend: str | None) -> str | None:
    """What a segment key records about attention: the quantized backend's name, else None."""
    return str(backend) if changes_pixels(backend) else None


def head_dim(module: Any) -> int | None:
    config = getattr(module, "config", None)
    for name in ("attention_head_dim", "head_dim"):
        value = config.get(name) if hasattr(config, "get") else getattr(config, name, None)
        if isinstance(value, int):
            return value
    return None


def _requirements_met(name: str) -> bool:
    from diffusers.models.attention_dispatch import (
        AttentionBackendName,
        _check_attention_backend_requirements,
    )

    try:
        _check_attention_backend_requirements(AttentionBackendName(name))
    except (ValueError, RuntimeError, ImportError):
        return False
    return True


def probe(name: str, dim: int, dtype: Any, device: str) -> str | None:
    """Run backend `name` once on small (1, 64, 2, dim) tensors and compare with SDPA.
    Returns None when it works, else why not (not installed, head size, dtype, GPU arch)."""
    import torch
    from diffusers.models.attention_dispatch import AttentionBackendName, dispatch_attention_fn

    if not _requirements_met(name):
        return "not installed"
    generator = torch.Generator("cpu").manual_seed(0)
    q, k, v = (torch.randn(1, 64, 2, dim, generator=generator).to(device=device, dtype=dtype)
               for _ in range(3))
    try:
        with torch.no_grad():
            got = dispatch_attention_fn(q, k, v, backend=AttentionBackendName(name))
            want = dispatch_attention_fn(q, k, v, backend=AttentionBackendName.NATIVE)
    except Exception as exc:  # noqa: BLE001 - any kernel error means "not usable here"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
    error = (got.float() - want.float()).abs().max().item()
    if not error < 0.05:  # an exact kernel agrees with SDPA to bf16 rounding
        return f"differs from SDPA by {error:.3g}"
    return None


def installed_backends(device: str, dim: int = 128, dtype: Any = None) -> list[str]:
    """Exact backends that run here for head size `dim`, fastest first (always ends in native)."""
    import torch

    if not device.startswith("cuda"):
        return [NATIVE]  # the other kernels are CUDA-only; SDPA is the CPU's best
    dtype = dtype or torch.bfloat16
    found = [name for name in EXACT_PREFERENCE[:-1] if probe(name, dim, dtype, device) is None]
    return found + [NATIVE]


def choose(requested: str | None, module: Any, device: str, dtype: Any) -> str:
    """The backend to set on `module`: `requested` as given, or for auto/None the fastest exact
    one that works for its head size (logged)."""
    if requested not in (None, AUTO):
        return str(requested)
    dim = head_dim(module)
    if dim is None or not device.startswith("cuda"):
        return NATIVE
    for name in EXACT_PREFERENCE[:-1]:
        why = probe(name, dim, dtype, device)
        if why is None:
            log.info("attention_backend=auto: %s for %s (head size %d)", name,
                     type(module).__name__, dim)
            return name
        log.debug("attention_backend=auto: %s skipped (%s)", name, why)
    log.info("attention_backend=auto: PyTorch SDPA for %s (no faster exact kernel runs here)",
             type(module).__name__)
    return NATIVE

"""The storyboard's `sampler:` and `flow_shift:` keys: which flow-matching scheduler a call uses.

    unipc   UniPCMultistepScheduler, flow sigmas (the Wan authors' default)
    euler   FlowMatchEulerDiscreteScheduler (ComfyUI's "euler" with the "simple" schedule)
    dpmpp   DPMSolverMultistepScheduler, DPM-Solver++ 2M on flow sigmas

A call's scheduler is a fresh object built from the pipeline's, so the resident pipeline keeps its
own; the shift carries over from the pipeline's scheduler unless `flow_shift` sets it.
"""

from __future__ import annotations

from typing import Any

from ..base import EngineError

SAMPLERS = ("unipc", "euler", "dpmpp")
_CLASS_OF = {"unipc": "UniPCMultistepScheduler", "euler": "FlowMatchEulerDiscreteScheduler",
             "dpmpp": "DPMSolverMultistepScheduler"}


def current_shift(scheduler: Any) -> float | None:
    config = scheduler.config
    for key in ("flow_shift", "shift"):
        if key in config and config[key] is not None:
            return float(config[key])
    return None


def scheduler_for(scheduler: Any, sampler: str | None, shift: float | None, engine: str) -> Any:
    """A scheduler for one call: `sampler` (None keeps the pipeline's kind) with `shift` (None
    keeps the pipeline's). Raises EngineError for an unknown sampler or a scheduler without a
    flow shift."""
    import diffusers

    if sampler is None:
        config = dict(scheduler.config)
        if shift is None:
            return scheduler
        if "flow_shift" in config:
            return type(scheduler).from_config(config, flow_shift=shift)
        if "shift" in config:
            return type(scheduler).from_config(config, shift=shift)
        raise EngineError(f"flow_shift: the {type(scheduler).__name__} of engine {engine!r} has "
                          f"no shift to set; remove flow_shift for this engine")
    if sampler not in SAMPLERS:
        raise EngineError(f"sampler={sampler!r} for engine {engine!r}: expected "
                          f"{' | '.join(SAMPLERS)}")
    base_shift = current_shift(scheduler)
    if base_shift is None:
        raise EngineError(f"sampler={sampler!r}: engine {engine!r} uses "
                          f"{type(scheduler).__name__}, not a flow-matching scheduler; remove "
                          f"`sampler` for this engine")
    shift = base_shift if shift is None else float(shift)
    cls = getattr(diffusers, _CLASS_OF[sampler])
    train = int(scheduler.config.get("num_train_timesteps", 1000))
    if sampler == "euler":
        return cls(num_train_timesteps=train, shift=shift)
    extra = {"algorithm_type": "dpmsolver++", "solver_order": 2} if sampler == "dpmpp" else {}
    return cls(num_train_timesteps=train, prediction_type="flow_prediction",
               use_flow_sigmas=True, flow_shift=shift, **extra)

"""The part of a diffusers engine that sets a resident pipeline up for one call, and undoes it:
LoRAs attached once per file and weighted per expert, the scheduler (sampler, flow shift) and
the two-expert boundary for this call only, and each expert's step cache (MagCache ratios from
a calibration, read before anything loads). A mixin of engine.diffusers.engine.DiffusersEngine,
which holds the options, spec and model source it reads.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from ..base import EngineError, GenerationRequest, LoraRef, ProgressFn
from . import step_cache
from .model_pool import PoolEntry
from .options import EngineConfigError
from .samplers import scheduler_for


class PerCallState:
    """Per-call pipeline state and the MagCache tables (see the module docstring)."""

    # -- MagCache ratios ---------------------------------------------------------------------

    def calibration_path(self):
        """Where `python -m flows.calibrate` writes this model's MagCache ratios."""
        return step_cache.calibration_file(self.spec.name, self.source.name,
                                           self.options.revision or self.source.revision)

    def _magcache_tables(self) -> dict[str, list[list[float]]] | None:
        """MagCache ratios by step count (engine.diffusers.step_cache), resolved before anything
        loads so a missing calibration stops the render at once with the command that makes it."""
        opts = self.options
        if opts.step_cache != "mag":
            return None
        ratios = opts.step_cache_ratios
        if isinstance(ratios, (list, tuple)):
            return {str(len(ratios)): [[float(r) for r in ratios]]}
        from pathlib import Path

        path = Path(ratios).expanduser() if isinstance(ratios, str) else self.calibration_path()
        if ratios is None and not path.is_file():
            raise EngineConfigError(
                f"engine.options.step_cache=mag: no MagCache ratios for {self.source.name!r} "
                f"(looked for {path}). Calibrate once with `python -m flows.calibrate "
                f"engine={self.spec.name} engine.model=<the same weights>`, or set "
                f"engine.options.step_cache_ratios to a list or a calibration file")
        return step_cache.read_calibration(path)

    def calibrate_magcache(self, request: GenerationRequest,
                           progress: ProgressFn | None = None) -> list[list[float]]:
        """One generation in MagCache's calibration mode (engine.options.step_cache must be
        "mag_calibrate": nothing is skipped); returns the ratios per expert, one per step that
        expert ran (engine.diffusers.step_cache.calibrated_ratios)."""
        if self.options.step_cache != "mag_calibrate":
            raise EngineConfigError("calibrate_magcache needs engine.options.step_cache="
                                    "mag_calibrate")
        self._calibrated = []
        self.generate(request, progress)
        ratios = self._calibrated
        if not any(ratios):
            raise EngineError(f"MagCache calibration of {self.spec.name!r} recorded no ratios "
                              f"(its denoiser has no transformer blocks MagCache can hook)")
        return ratios


    # -- per-call state: LoRAs, scheduler shift, expert boundary ------------------------------

    @contextlib.contextmanager
    def _per_call_state(self, pipe, entry: PoolEntry, request: GenerationRequest) -> Iterator[None]:
        self._apply_loras(pipe, entry, request.loras)
        saved_scheduler = pipe.scheduler
        saved_boundary = getattr(pipe.config, "boundary_ratio", None)
        try:
            shift = request.params.get("flow_shift")
            pipe.scheduler = scheduler_for(pipe.scheduler, request.params.get("sampler"),
                                           None if shift is None else float(shift),
                                           self.spec.name)
            boundary = request.params.get("boundary")
            if boundary is not None and "boundary_ratio" in pipe.config:
                pipe.register_to_config(boundary_ratio=float(boundary))
            self._configure_step_cache(pipe, int(self.param(request, "steps")))
            yield
        finally:
            pipe.scheduler = saved_scheduler
            if "boundary_ratio" in pipe.config:
                pipe.register_to_config(boundary_ratio=saved_boundary)

    def _configure_step_cache(self, pipe, steps: int) -> None:
        """Each expert's step cache gets the steps it runs in this call (and MagCache its
        ratios for them); see engine.diffusers.step_cache."""
        if self.options.step_cache == "none":
            return
        per_expert = step_cache.expert_steps(pipe, steps)
        ratios = step_cache.ratios_for(self._mag_tables, steps) if self._mag_tables else [None]
        step_cache.configure_for_call(pipe, per_expert, ratios)

    def denoisers(self, pipe) -> list[tuple[str, Any]]:
        """(name, module) of each denoising network LoRAs attach to, first expert first."""
        found = []
        for name in ("transformer", "transformer_2", "unet"):
            module = getattr(pipe, name, None)
            if module is not None:
                found.append((name, module))
        return found

    def _apply_loras(self, pipe, entry: PoolEntry, loras: tuple[LoraRef, ...] | list) -> None:
        denoisers = self.denoisers(pipe)
        if not loras:
            for _name, module in denoisers:
                if getattr(module, "_hf_peft_config_loaded", False):
                    module.disable_adapters()
            return
        if not hasattr(pipe, "load_lora_weights"):
            raise EngineError(f"engine {self.spec.name!r} ({type(pipe).__name__}) cannot load "
                              f"LoRAs; remove `loras` from the storyboard for this engine")
        names = []
        for lora in loras:
            if lora.path not in entry.adapters:
                name = f"lora{len(entry.adapters)}"
                try:
                    pipe.load_lora_weights(lora.path, adapter_name=name)
                    if any(n == "transformer_2" for n, _ in denoisers):
                        pipe.load_lora_weights(lora.path, adapter_name=name,
                                               load_into_transformer_2=True)
                except (ValueError, KeyError, OSError, RuntimeError) as exc:
                    raise EngineError(f"LoRA {lora.path}: cannot load it into "
                                      f"{type(pipe).__name__}: {exc}") from None
                entry.adapters[lora.path] = name
            names.append(entry.adapters[lora.path])
        for index, (_name, module) in enumerate(denoisers):
            weights = [lora.strength if index == 0 else lora.second for lora in loras]
            module.enable_adapters()
            module.set_adapters(names, weights=weights)

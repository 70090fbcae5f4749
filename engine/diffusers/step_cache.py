"""Step caches (diffusers' First Block Cache and MagCache) and MagCache's calibration files.

A step cache skips most of the denoiser on steps whose result it can predict from the previous
step. First Block Cache decides from the first block's output and needs nothing else. MagCache
decides from a per-step table of "magnitude ratios" that depends on the model and the number of
steps, and that diffusers cannot know:

- diffusers assumes 28 steps unless told, so a 30- or 40-step render would skip the wrong steps:
  `configure_for_call` gives each call's real step count;
- on two-expert models (Wan 2.2 A14B) each expert has its own cache whose count starts when that
  expert first runs (the low-noise expert at the boundary, mid-schedule): each gets the number
  of steps *it* runs and its own ratios;
- the ratios come from a calibration file that `python -m flows.calibrate` writes: one
  generation in diffusers' calibration mode (nothing skipped, ratios recorded) per step count.

Calibration files live in `calibration_dir()` (REELFORGE_CALIBRATION_DIR, default
~/.cache/reelforge/magcache), one per engine + model + revision, or wherever
`engine.options.step_cache_ratios` points.
"""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

from .options import DiffusersOptions, EngineConfigError

DENOISERS = ("transformer", "transformer_2", "unet")
FORMAT = "reelforge-magcache-1"


def denoiser_modules(pipe) -> list[Any]:
    """The pipeline's denoising networks, first expert first."""
    return [m for m in (getattr(pipe, n, None) for n in DENOISERS) if m is not None]


def apply_step_cache(pipe, options: DiffusersOptions) -> None:
    """Install the step cache on every denoiser. MagCache's step count and ratios are set per
    call (`configure_for_call`); the hooks keep a reference to the config object we mutate."""
    from diffusers import FirstBlockCacheConfig, MagCacheConfig

    threshold = options.step_cache_threshold
    for module in denoiser_modules(pipe):
        if not hasattr(module, "enable_cache"):
            raise EngineConfigError(f"engine.options.step_cache={options.step_cache!r}: "
                                    f"{type(module).__name__} does not support step caching")
        if options.step_cache == "first_block":
            config: Any = FirstBlockCacheConfig(threshold=threshold or 0.05)
        elif options.step_cache == "mag_calibrate":
            config = MagCacheConfig(calibrate=True)
        else:  # "mag": placeholder ratios, replaced before every call
            config = MagCacheConfig(threshold=threshold or 0.06, mag_ratios=[1.0])
        module.enable_cache(config)
        module._reelforge_step_cache = config


def expert_steps(pipe, steps: int) -> list[int]:
    """How many of `steps` each denoiser runs: all of them for one expert; for two experts the
    steps whose timestep is >= boundary_ratio * num_train_timesteps go to the first (the rule
    diffusers' Wan pipelines apply), the rest to the second."""
    experts = denoiser_modules(pipe)
    boundary = getattr(getattr(pipe, "config", None), "boundary_ratio", None)
    if len(experts) < 2 or boundary is None:
        return [steps] * max(1, len(experts))
    scheduler = copy.deepcopy(pipe.scheduler)
    scheduler.set_timesteps(steps, device="cpu")
    edge = float(boundary) * scheduler.config.num_train_timesteps
    first = int(sum(float(t) >= edge for t in scheduler.timesteps))
    return [first, steps - first]


def configure_for_call(pipe, steps_per_expert: list[int],
                       ratios_per_expert: list[list[float] | None]) -> None:
    """Before a call: each denoiser's MagCache gets the number of steps it runs and the ratios
    for them; every step cache's state is reset, so a call never inherits a half-finished count
    (from an earlier call that raised mid-way)."""
    import torch
    from diffusers import MagCacheConfig
    from diffusers.hooks.mag_cache import nearest_interp

    for index, module in enumerate(denoiser_modules(pipe)):
        config = getattr(module, "_reelforge_step_cache", None)
        if config is None:
            continue
        if isinstance(config, MagCacheConfig):
            steps = max(1, steps_per_expert[min(index, len(steps_per_expert) - 1)])
            # Calibration counts one step more than it runs, so diffusers never reaches its
            # end-of-run reset, which empties the ratios before `calibrated_ratios` reads them.
            config.num_inference_steps = steps + 1 if config.calibrate else steps
            if not config.calibrate:
                ratios = ratios_per_expert[min(index, len(ratios_per_expert) - 1)]
                table = torch.tensor(list(ratios or [1.0] * steps), dtype=torch.float32)
                config.mag_ratios = table if len(table) == steps else nearest_interp(table, steps)
        registry = getattr(module, "_diffusers_hook", None)
        if registry is not None:
            registry.reset_stateful_hooks(recurse=True)


def calibrated_ratios(pipe) -> list[list[float]]:
    """After a call with step_cache=mag_calibrate: per denoiser, the magnitude ratio of each step
    it ran, averaged over the cond and uncond passes (MagCache applies one table to both)."""
    found: list[list[float]] = []
    for module in denoiser_modules(pipe):
        per_context: list[list[float]] = []
        for block in module.modules():
            registry = getattr(block, "_diffusers_hook", None)
            hook = registry.get_hook("mag_cache_block_hook") if registry is not None else None
            if hook is None or not getattr(hook, "is_tail", False):
                continue
            for state in hook.state_manager._state_cache.values():
                if state.calibration_ratios:
                    per_context.append(list(state.calibration_ratios))
        length = min((len(r) for r in per_context), default=0)
        found.append([round(sum(r[i] for r in per_context) / len(per_context), 5)
                      for i in range(length)])
    return found


# -- calibration files -------------------------------------------------------------------------

def calibration_dir() -> Path:
    root = os.environ.get("REELFORGE_CALIBRATION_DIR")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "reelforge" / "magcache"


def calibration_file(engine: str, model: str, revision: str) -> Path:
    """Where flows.calibrate writes (and the engine looks for) this model's ratios."""
    safe = lambda text: re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "model"
    return calibration_dir() / f"{safe(engine)}__{safe(model)}__{safe(revision)[:16]}.json"


def read_calibration(path: Path) -> dict[str, list[list[float]]]:
    """{step count: ratios per expert} from a calibration file; EngineConfigError when it is
    unreadable or not one (the message names the file and the key, never its contents)."""
    where = f"engine.options.step_cache_ratios: {path}"
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise EngineConfigError(f"{where}: no such file; write it with `python -m "
                                f"flows.calibrate engine=<name> engine.model=<weights>`") from None
    except (OSError, ValueError) as exc:
        raise EngineConfigError(f"{where}: not a readable JSON file "
                                f"({type(exc).__name__}); calibrate again") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise EngineConfigError(f"{where}: not a MagCache calibration file (format "
                                f"{FORMAT!r} expected); write one with `python -m flows.calibrate`")
    tables = data.get("tables")
    ok = isinstance(tables, dict) and tables and all(
        str(k).isdigit() and isinstance(v, list) and v and all(
            isinstance(e, list) and e and all(isinstance(r, (int, float)) for r in e) for e in v)
        for k, v in tables.items())
    if not ok:
        raise EngineConfigError(f"{where}: key 'tables' must map step counts to a list of "
                                f"ratio lists (one per expert); calibrate again")
    return {str(k): v for k, v in tables.items()}


def calibration_document(path: Path, engine: str, model: str, revision: str, steps: int,
                         ratios: list[list[float]]) -> dict[str, Any]:
    """The calibration file's content with the table for `steps` added (or replaced) to what
    `path` holds; the caller writes it (atomically: stages.media.atomic owns temp names)."""
    tables: dict[str, Any] = {}
    if path.is_file():
        try:
            tables = read_calibration(path)
        except EngineConfigError:
            tables = {}  # a damaged file is rewritten, not merged
    tables[str(steps)] = ratios
    return {"format": FORMAT, "engine": engine, "model": model, "revision": revision,
            "tables": dict(sorted(tables.items(), key=lambda kv: int(kv[0])))}


def ratios_for(tables: dict[str, list[list[float]]], steps: int) -> list[list[float]]:
    """Per-expert ratios for a `steps`-step call: the table calibrated at that count, else the
    one with the nearest count (diffusers resamples it to each expert's steps)."""
    if str(steps) in tables:
        return tables[str(steps)]
    nearest = min(tables, key=lambda k: (abs(int(k) - steps), -int(k)))
    return tables[nearest]

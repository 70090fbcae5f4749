"""`engine.options.parallel`: the degrees of context parallelism, parsed and checked with the
other engine options (engine.diffusers.options), before anything starts. What they do, and the
processes around them, is engine.diffusers.parallel; applying them to a model, its .model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ...base import EngineConfigError, EngineError
from ...suggest import did_you_mean


class ParallelError(EngineError):
    """The ranks cannot (or can no longer) work together; retrying does not help."""


KEYS = ("ulysses", "ring", "cfg", "anything")


@dataclass(frozen=True)
class ParallelConfig:
    """`engine.options.parallel`: degrees of context parallelism, their product = processes.

    ulysses:  Ulysses attention degree (all-to-all of heads; divides the head count).
    ring:     ring attention degree (K/V passed around; needs flash or cuDNN attention).
    cfg:      CFG parallelism; only 1 (diffusers 0.42.1 has none).
    anything: Ulysses/ring "anything" mode: token counts (and for Ulysses head counts) that do
              not divide by the degree; one of ulysses / ring must be 1.
    """

    ulysses: int = 1
    ring: int = 1
    cfg: int = 1
    anything: bool = False

    @property
    def size(self) -> int:
        return self.ulysses * self.ring * self.cfg

    @property
    def shape(self) -> tuple[int, int]:
        return (self.ring, self.ulysses)

    def describe(self) -> str:
        parts = [f"{k}={getattr(self, k)}" for k in ("ulysses", "ring") if getattr(self, k) > 1]
        return " ".join(parts + (["anything"] if self.anything else []))


def parse(value: Any, engine: str) -> ParallelConfig | None:
    """The option's value (a mapping, a ParallelConfig, None) as a ParallelConfig, or None when
    off (None, {} or every degree 1). EngineConfigError naming key, value and fix otherwise."""
    if value is None or isinstance(value, ParallelConfig):
        return None if value is None or value.size == 1 else value
    where = f"engine.options.parallel for engine {engine!r}"
    if not isinstance(value, Mapping):
        raise EngineConfigError(f"{where}: {value!r} is not a mapping; expected e.g. "
                                f"{{ulysses: 4}} or {{ulysses: 2, ring: 2}} (null: off)")
    for key in value:
        if key not in KEYS:
            hint = did_you_mean(key, KEYS)
            raise EngineConfigError(f"engine.options.parallel.{key}: unknown key for engine "
                                    f"{engine!r}{hint} (keys: {', '.join(KEYS)})")
    degrees = {}
    for key in ("ulysses", "ring", "cfg"):
        degree = value.get(key, 1)
        if degree is None:
            degree = 1
        if isinstance(degree, bool) or not isinstance(degree, int) or degree < 1:
            raise EngineConfigError(f"engine.options.parallel.{key}={degree!r} for engine "
                                    f"{engine!r}: expected a whole number of GPUs >= 1")
        degrees[key] = degree
    anything = value.get("anything", False)
    if not isinstance(anything, bool):
        raise EngineConfigError(f"engine.options.parallel.anything={anything!r} for engine "
                                f"{engine!r}: expected true or false")
    if degrees["cfg"] > 1:
        raise EngineConfigError(
            f"engine.options.parallel.cfg={degrees['cfg']} for engine {engine!r}: CFG "
            f"parallelism is not available in diffusers 0.42.1 (its parallel module lists "
            f"CFG/data parallel as to do); use ulysses and/or ring, with cfg: 1")
    if anything and degrees["ulysses"] > 1 and degrees["ring"] > 1:
        raise EngineConfigError(
            f"engine.options.parallel.anything=true for engine {engine!r}: works with ulysses "
            f"or ring alone, not both ({degrees['ulysses']} x {degrees['ring']}); set one to 1")
    config = ParallelConfig(anything=anything, **degrees)
    return None if config.size == 1 else config


def check_options(config: ParallelConfig, offload: str, step_cache: str, device: str,
                  engine: str) -> None:
    """Options that cannot go with context parallelism (checked with the other options)."""
    if offload != "none":
        raise EngineConfigError(
            f"engine.options.offload={offload!r} with engine.options.parallel for engine "
            f"{engine!r}: context parallelism keeps the whole model on every GPU (it splits "
            f"activations, not weights); set offload=none, or drop parallel and use offload")
    if step_cache != "none":
        raise EngineConfigError(
            f"engine.options.step_cache={step_cache!r} with engine.options.parallel for engine "
            f"{engine!r}: diffusers' step caches decide per rank on that rank's share of the "
            f"tokens, so ranks could disagree and stall; set step_cache=none")
    if device.startswith("cuda:"):
        raise EngineConfigError(
            f"engine.options.device={device!r} with engine.options.parallel for engine "
            f"{engine!r}: each process uses the GPU of its LOCAL_RANK; set device=auto or cuda")

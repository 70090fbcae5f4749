"""The table of engines: name -> (spec, factory).

Specs are plain data, so planning and validation can read `engine_spec(name)` without importing
or constructing anything heavy. A factory is either a callable `factory(**options) -> Engine` or
a lazy import path "package.module:Attribute" (resolved on first `get_engine`). The engines
this project ships (`preview` and the diffusers families) are registered by engine.builtin,
which the `engine` package imports first, so any `from engine.registry import ...` sees them.
A plugin or a test adds its own:

    register("my_engine", EngineSpec(name="my_engine", ...), MyEngine)
    register("my_engine", MY_SPEC, "my_package.engine:MyEngine")  # imported on first get_engine
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Union

from .base import Engine, EngineSpec
from .suggest import did_you_mean

__all__ = [
    "EngineEntry",
    "UnknownEngineError",
    "available_engines",
    "engine_spec",
    "engines_where",
    "get_engine",
    "register",
    "unregister",
]

Factory = Union[Callable[..., Engine], str]


@dataclass(frozen=True)
class EngineEntry:
    name: str
    spec: EngineSpec
    factory: Factory


class UnknownEngineError(KeyError):
    """No engine is registered under that name. Derives from KeyError; str() is the message."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = list(known)
        hint = did_you_mean(name, self.known, sentence=True, n=3, cutoff=0.5)
        self.message = (
            f"unknown engine {name!r}.{hint} Known engines: {', '.join(self.known) or '(none)'}"
        )
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


_ENGINES: dict[str, EngineEntry] = {}


def register(name: str, spec: EngineSpec, factory: Factory, *, replace: bool = False) -> None:
    """Add an engine under `name`. Registering a taken name raises ValueError unless `replace`."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"engine name must be a non-empty string, got {name!r}")
    if not isinstance(spec, EngineSpec):
        raise TypeError(f"spec must be an EngineSpec, got {type(spec).__name__}")
    if not (callable(factory) or (isinstance(factory, str) and ":" in factory)):
        raise TypeError("factory must be a callable or an import path 'package.module:Attribute'")
    if name in _ENGINES and not replace:
        raise ValueError(f"an engine named {name!r} is already registered")
    _ENGINES[name] = EngineEntry(name=name, spec=spec, factory=factory)


def unregister(name: str) -> None:
    """Remove an engine (tests, plugins); unknown names raise UnknownEngineError."""
    _entry(name)
    del _ENGINES[name]


def available_engines() -> list[str]:
    """Registered engine names, sorted."""
    return sorted(_ENGINES)


def engines_where(predicate: Callable[[EngineSpec], bool]) -> list[str]:
    """Registered engine names, sorted, whose spec satisfies `predicate` (for messages that
    suggest engines: derived from the specs, never a hand-written list)."""
    return [name for name in available_engines() if predicate(_ENGINES[name].spec)]


def _entry(name: str) -> EngineEntry:
    try:
        return _ENGINES[name]
    except (KeyError, TypeError):
        raise UnknownEngineError(name, available_engines()) from None


def engine_spec(name: str) -> EngineSpec:
    """The spec of engine `name`, without importing or constructing the engine."""
    return _entry(name).spec


def _resolve(factory: Factory) -> Callable[..., Engine]:
    if callable(factory):
        return factory
    module_name, _, attr = factory.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def get_engine(name: str, **options: Any) -> Engine:
    """Construct engine `name` with `options` (passed to its factory)."""
    entry = _entry(name)
    engine = _resolve(entry.factory)(**options)
    if not isinstance(engine, Engine):
        raise TypeError(f"the factory for engine {name!r} returned {type(engine).__name__}")
    return engine

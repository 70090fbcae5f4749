"""Build the render's engine and its fallback from the engine config.

The engine config (conf/engine/<name>.yaml, overridable as engine.*) holds `name`, `model` (a
short form of `options.model`), `options` (constructor options), `params` (generation
defaults, part of every content key) and `fallback`: an engine config name, or an inline
{name, model, options, params}. A storyboard's `fallback:` names an engine config too and wins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from engine.base import Engine
from engine.registry import UnknownEngineError, get_engine
from flows.config.settings import CONF_DIR, ConfigInvalid
from stages.plan.profiles import (
    Profile,
    ProfileChoice,
    ProfileConfigError,
    profiles_from_config,
    unready,
)


def engine_options(config: Mapping[str, Any]) -> dict[str, Any]:
    options = dict(config.get("options") or {})
    if config.get("model") is not None:
        options["model"] = str(config["model"])
    return options


def construct(config: Mapping[str, Any], where: str) -> Engine:
    """The engine a config describes; ConfigInvalid naming `where` when it cannot be built."""
    name = config.get("name")
    try:
        return get_engine(name, **engine_options(config))
    except UnknownEngineError as exc:
        raise ConfigInvalid(f"{where}: {exc}") from None
    except (TypeError, ValueError) as exc:  # unknown option, bad value, model not found
        raise ConfigInvalid(f"{where}: {exc}") from None


def engine_config_file(name: str) -> dict[str, Any]:
    """conf/engine/<name>.yaml as plain data with its `defaults:` applied as Hydra composes it
    on the command line (`_shared/diffusers@_here_`, then `_self_`), or {"name": name} when
    there is none. Fallback engines and `flows.models` read engine configs this way, outside
    the command's composition, and must see the shared options too."""
    data = _engine_yaml(Path(CONF_DIR) / "engine" / f"{name}.yaml")
    if data is None:
        return {"name": name}
    from omegaconf import OmegaConf

    defaults = data.pop("defaults", None) or ["_self_"]
    if "_self_" not in defaults:
        defaults = [*defaults, "_self_"]  # Hydra's rule: the file itself comes last
    merged = OmegaConf.create({})
    for entry in defaults:
        if entry == "_self_":
            merged = OmegaConf.merge(merged, data)
            continue
        option, _, package = str(entry).partition("@")
        shared = _engine_yaml(Path(CONF_DIR) / "engine" / f"{option}.yaml")
        if package not in ("", "_here_") or shared is None:
            raise ConfigInvalid(f"conf/engine/{name}.yaml: defaults entry {entry!r} is not "
                                "supported here; use a file of conf/engine/ with @_here_")
        shared.pop("defaults", None)
        merged = OmegaConf.merge(merged, shared)
    return dict(OmegaConf.to_container(merged, resolve=False))


def _engine_yaml(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    return dict(data) if isinstance(data, dict) else None


def build_keyframe_engines(names: list[str], render_config: Mapping[str, Any], render: Engine
                           ) -> dict[str, tuple[Engine, dict[str, Any]]]:
    """name -> (engine, its config's params) for each image engine that generates keyframes,
    built like fallback engines (conf/engine/<name>.yaml); the render engine is reused when it
    is one of them, so its weights load once."""
    out = {}
    for name in names:
        if name == render_config.get("name"):
            out[name] = (render, dict(render_config.get("params") or {}))
            continue
        config = engine_config_file(name)
        out[name] = (construct(config, f"keyframe engine {name!r}"),
                     dict(config.get("params") or {}))
    return out


def fallback_config(engine_config: Mapping[str, Any], storyboard_fallback: str | None
                    ) -> dict[str, Any] | None:
    """The fallback's config: the storyboard's choice, else the engine config's; an inline
    config with the same name supplies its options."""
    configured = engine_config.get("fallback")
    inline = dict(configured) if isinstance(configured, Mapping) else None
    name = storyboard_fallback or (inline or {}).get("name") or configured
    if not name:
        return None
    if not isinstance(name, str):
        raise ConfigInvalid(f"engine.fallback={configured!r}: give an engine config name "
                            f"(e.g. svd) or {{name, model, options, params}}")
    if name == engine_config.get("name"):
        return None  # falling back to itself would only fail again
    if inline is not None and inline.get("name") == name:
        return inline
    return engine_config_file(name)


def build_engines(engine_config: Mapping[str, Any], storyboard_fallback: str | None
                  ) -> tuple[Engine, Engine | None, dict[str, Any]]:
    """(engine, fallback or None, fallback params)."""
    engine = construct(engine_config, f"engine={engine_config.get('name')}")
    fallback_cfg = fallback_config(engine_config, storyboard_fallback)
    if fallback_cfg is None:
        return engine, None, {}
    fallback = construct(fallback_cfg, f"fallback engine {fallback_cfg.get('name')!r}")
    return engine, fallback, dict(fallback_cfg.get("params") or {})


def profile_choice(engine_config: Mapping[str, Any], override: str | None) -> ProfileChoice:
    """The engine config's profiles and the command line's profile= (ConfigInvalid when the
    config's `profiles:` is malformed)."""
    try:
        return ProfileChoice(profiles_from_config(engine_config), override)
    except ProfileConfigError as exc:
        raise ConfigInvalid(str(exc)) from None


def with_profile_options(engine_config: Mapping[str, Any], profile: Profile | None,
                         cli_options: list[str]) -> dict[str, Any]:
    """The engine config with the render profile's engine options laid over its options,
    except those set on the command line (an explicit key wins over its profile)."""
    config = dict(engine_config)
    if profile is None or not profile.options:
        return config
    options = dict(config.get("options") or {})
    options.update({k: v for k, v in profile.options.items() if k not in cli_options})
    config["options"] = options
    return config


def check_profiles_ready(choice: ProfileChoice, names: set[str]) -> None:
    """Before any work: every profile the render uses has what it needs (a draft profile its
    step-distilled LoRA file), with the key to set."""
    problems = []
    for name in sorted(names):
        profile = choice.get(name)
        if profile is not None:
            problems += [f"profile {name!r}: {problem}" for problem in unready(profile)]
    if problems:
        raise ConfigInvalid("\n".join(problems))


def check_engine_params(engine: Engine, engine_config: Mapping[str, Any],
                        choice: ProfileChoice) -> None:
    """The engine config's `params` and every profile's `params`, checked before anything
    renders (a dry run too): generation keys by the storyboard's own rules, the rest by the
    engine (the preview's `motion`). ConfigInvalid lists every problem."""
    from pydantic import ValidationError

    from stages.storyboard.schema import GenerationKeys

    sources = [("engine.params", dict(engine_config.get("params") or {}))]
    sources += [(f"engine.profiles.{name}.params", dict(profile.params))
                for name, profile in sorted(choice.profiles.items())]
    problems = []
    for where, params in sources:
        known = {k: v for k, v in params.items() if k in GenerationKeys.model_fields}
        try:
            GenerationKeys.model_validate(known)
        except ValidationError as exc:
            for error in exc.errors():
                key = ".".join(str(p) for p in error["loc"])
                problems.append(f"{where}.{key}={error.get('input')!r}: {error['msg']}")
        problems += [f"{where}.{problem}" for problem in engine.check_params(
            {k: v for k, v in params.items() if k not in GenerationKeys.model_fields})]
    if problems:
        raise ConfigInvalid("\n".join(problems))

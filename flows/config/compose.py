"""Compose the render config from JSON-friendly parameters, without a command line.

A deployment run passes parameters (`storyboard="ep01"`, `overrides=["engine=preview",
"output.crf=20"]`), not argv. This builds the same config `python -m flows.render storyboard=ep01
engine=preview output.crf=20` would, with Hydra's compose API over the same conf/ folder, and turns
it into RenderSettings the same way the CLI does (`settings_from_config`, below). So a
deployment run with overrides renders exactly what the CLI renders with them.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

from flows.config.settings import CONF_DIR, ConfigInvalid, RenderSettings
from flows.config.storage import filesystem, is_remote, layout

# Hydra's global state is one per process; flow runs may compose from several threads.
_HYDRA_LOCK = threading.RLock()


def check_overrides(overrides: Any, what: str = "overrides") -> list[str]:
    """A JSON parameter that must be a list of `key=value` strings."""
    if overrides is None:
        return []
    if isinstance(overrides, str) or not isinstance(overrides, (list, tuple)) or not all(
        isinstance(o, str) for o in overrides
    ):
        raise ConfigInvalid(f"{what}={overrides!r}: give a list of Hydra overrides, e.g. "
                            '["engine=preview", "output.crf=20"]')
    return list(overrides)


def compose_config(overrides: Sequence[str], config_name: str = "config") -> DictConfig:
    """conf/<config_name>.yaml composed with `overrides`, exactly as the CLI would."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    overrides = check_overrides(list(overrides))
    with _HYDRA_LOCK:
        try:
            if GlobalHydra.instance().is_initialized():
                # Inside a Hydra CLI (python -m flows.series): same conf/ folder, reuse it.
                return compose(config_name=config_name, overrides=overrides)
            with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3",
                                       job_name="reelforge"):
                return compose(config_name=config_name, overrides=overrides)
        except (HydraException, OmegaConfBaseException) as exc:
            message = " ".join(str(exc).split())
            raise ConfigInvalid(f"overrides {overrides}: {message} (config groups and keys are "
                                f"in {CONF_DIR.name}/; `python -m flows.render --help` lists "
                                "them)") from None


def compose_settings(
    storyboard: str | None,
    overrides: Sequence[str] | None = None,
    cwd: str | None = None,
) -> RenderSettings:
    """RenderSettings for `storyboard` (a name, a path or an fsspec URL) with Hydra overrides.

    `cwd` is where relative paths (storyboard, output_dir, storage.root) resolve from; a
    deployment run's working directory (the project folder) when not given.
    """
    overrides = check_overrides(overrides)
    if storyboard is not None and not isinstance(storyboard, str):
        raise ConfigInvalid(f"storyboard={storyboard!r}: give a storyboard name or a path")
    if storyboard and any(o.split("=", 1)[0].lstrip("+~") == "storyboard" for o in overrides):
        raise ConfigInvalid(f"storyboard={storyboard!r} and an override 'storyboard=...' both "
                            "given; pass only one")
    cwd = cwd or os.getcwd()
    full = ([f"storyboard={_quoted(storyboard)}"] if storyboard else []) + overrides
    config = compose_config(full)
    settings = settings_from_config(config, cwd, overrides)
    return fetch_remote_storyboard(settings)


def settings_from_config(cfg: DictConfig, cwd: str, cli_overrides: list[str]) -> RenderSettings:
    """The composed config as RenderSettings. Every default comes from conf/config.yaml (and the
    engine/post/output groups it selects): the keys are read as composed, never defaulted here."""
    data = OmegaConf.to_container(cfg, resolve=True)
    keys = [o.split("=", 1)[0].lstrip("+~") for o in cli_overrides]
    return RenderSettings(
        storyboard=data["storyboard"] or "",
        cwd=cwd,
        storyboards_dir=data["storyboards_dir"],
        output_dir=data["output_dir"],
        cache_dir=data["cache_dir"],
        shots=data["shots"],
        dry_run=bool(data["dry_run"]),
        fps=data["fps"],
        resolution=data["resolution"],
        engine=dict(data["engine"] or {}),
        profile=data["profile"],
        engine_cli_options=[k.split(".", 2)[2] for k in keys
                            if k.startswith("engine.options.") and k.count(".") >= 2],
        post=list((data["post"] or {}).get("chain") or []),
        post_override="post" in keys,
        output=dict(data["output"] or {}),
        workers=data["workers"],
        retries=data["retries"],
        retry_delay=float(data["retry_delay"]),
        images=dict(data["images"] or {}),
        keyframes=dict(data.get("keyframes") or {}),
        depth=dict(data.get("depth") or {}),
        pose=dict(data.get("pose") or {}),
        disk_check=data["disk_check"],
        progress=data["progress"],
        watch=data["watch"],
        watch_interval=data["watch_interval"],
        watch_max_runs=data["watch_max_runs"],
        notify=[str(url) for url in data.get("notify") or []],
        storage=dict(data["storage"] or {}),
        provenance=dict(data["provenance"] or {}),
    )


def _quoted(value: str) -> str:
    """A value that Hydra's override grammar reads back verbatim (paths, URLs, spaces)."""
    if value.replace("_", "").replace("-", "").replace(".", "").replace("/", "").isalnum():
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fetch_remote_storyboard(settings: RenderSettings) -> RenderSettings:
    """A storyboard given as an fsspec URL (a submitted job on an object store) is copied to
    this worker's storage folder first; everything downstream reads local files."""
    if not is_remote(settings.storyboard):
        return settings
    url = settings.storyboard
    local = layout(settings).out_root.parent / "submitted" / url.rsplit("/", 1)[-1]
    local.parent.mkdir(parents=True, exist_ok=True)
    try:
        filesystem(url).get_file(url, str(local))
    except FileNotFoundError:
        raise ConfigInvalid(f"storyboard={url}: no such file") from None
    settings.storyboard = str(local)
    return settings

"""A series: conf/series/NAME.yaml composed with the caller's overrides into the episodes to
render (storyboard names, paths or globs) with each one's RenderSettings, and where finished
episodes are published (flows/deploy/publish.py).
"""

from __future__ import annotations

import fnmatch
import glob
from dataclasses import dataclass
from pathlib import Path

from flows.config.compose import check_overrides, compose_config, compose_settings
from flows.config.settings import (CONF_DIR, PROJECT_STORYBOARDS, ConfigInvalid, RenderSettings,
                                   find_storyboard, storyboard_names)
from flows.deploy.publish import PublishConfig

SERIES_DIR = CONF_DIR / "series"


def known_series() -> list[str]:
    return sorted(p.stem for p in SERIES_DIR.glob("*.yaml"))


@dataclass(frozen=True)
class Episode:
    name: str  # the storyboard's name: its folder under the output root
    storyboard: str  # as the series lists it (a name or a path), passed to each render
    settings: RenderSettings


@dataclass
class SeriesPlan:
    name: str
    episodes: list[Episode]
    publish: PublishConfig
    render_deployment: str | None
    overrides: list[str]  # what every episode is composed with: series=NAME + the caller's
    cwd: str | None = None


def _storyboard_folders(settings: RenderSettings) -> list[Path]:
    folders = [settings.path(settings.storyboards_dir)] if settings.storyboards_dir else []
    return list(dict.fromkeys(folders + [settings.path("storyboards"), PROJECT_STORYBOARDS]))


def expand_episodes(patterns: list[str], settings: RenderSettings) -> list[str]:
    """Storyboard names and paths as listed; a glob (`ep*`, `shows/*.yaml`) expands, sorted."""
    found: list[str] = []
    for pattern in patterns:
        if not any(c in pattern for c in "*?["):
            found.append(pattern)
            continue
        if "/" in pattern or pattern.endswith((".yaml", ".yml")):
            matches = sorted(glob.glob(str(settings.path(pattern))))
        else:
            names = {n for f in _storyboard_folders(settings) for n in storyboard_names(f)}
            matches = sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))
        if not matches:
            raise ConfigInvalid(f"series.episodes: {pattern!r} matches no storyboard (looked in "
                                f"{', '.join(str(f) for f in _storyboard_folders(settings))})")
        found.extend(matches)
    return list(dict.fromkeys(found))


def load_series(series: str, overrides: list[str] | None = None, cwd: str | None = None,
                render_deployment: str | None = None) -> SeriesPlan:
    """Compose conf/series/<series>.yaml with `overrides`; every episode's settings. Raises
    ConfigInvalid naming the key and the fix."""
    if not isinstance(series, str) or not series:
        raise ConfigInvalid(f"series={series!r}: name a series in conf/series/ "
                            f"({', '.join(known_series()) or 'none yet'})")
    overrides = [o for o in check_overrides(overrides)
                 if o.split("=", 1)[0].lstrip("+~") != "series"]
    if series not in known_series():
        raise ConfigInvalid(f"series={series}: no conf/series/{series}.yaml; known series: "
                            f"{', '.join(known_series()) or 'none'}")
    every = [f"series={series}", *overrides]
    config = compose_config(every)
    block = config.get("series")
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(block, resolve=True) if block is not None else {}
    where = f"conf/series/{series}.yaml: series"
    unknown = sorted(set(data) - {"episodes", "publish", "render_deployment"})
    if unknown:
        raise ConfigInvalid(f"{where}.{unknown[0]}: unknown key; known: episodes, publish, "
                            "render_deployment")
    patterns = data.get("episodes")
    if isinstance(patterns, str):
        patterns = [patterns]
    if not patterns or not isinstance(patterns, list) or not all(
        isinstance(p, str) and p for p in patterns
    ):
        raise ConfigInvalid(f"{where}.episodes={patterns!r}: list storyboard names, paths or "
                            "globs, e.g. episodes: [ep01, ep02] or episodes: ['ep*']")
    deployment = render_deployment or data.get("render_deployment")
    if deployment is not None and (not isinstance(deployment, str) or "/" not in deployment):
        raise ConfigInvalid(f"{where}.render_deployment={deployment!r}: give FLOW/DEPLOYMENT, "
                            "e.g. render/default, or null to render in this process")
    base = compose_settings(None, every, cwd)
    episodes = []
    for storyboard in expand_episodes(patterns, base):
        settings = compose_settings(storyboard, every, cwd)
        episodes.append(Episode(find_storyboard(settings).stem, storyboard, settings))
    names = [e.name for e in episodes]
    if len(set(names)) != len(names):
        raise ConfigInvalid(f"{where}.episodes: two episodes share a name ({names}); their "
                            "outputs would overwrite each other")
    return SeriesPlan(series, episodes, PublishConfig.of(data.get("publish"), f"{where}.publish"),
                      deployment, every, cwd)

"""Render settings: the composed Hydra config as a plain, JSON-friendly dataclass.

The CLI builds it from Hydra's config (flows/config/compose.py); a deployment run can build it
from a dict. Nothing below flows/ sees Hydra or OmegaConf.

Defaults live in one place, conf/config.yaml: the CLI and deployments compose it through Hydra,
and the dataclass's own defaults (for RenderSettings built in Python, as tests do) are read from
the same file, so the two cannot drift (tests/flows/test_settings_defaults.py checks it).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.suggest import did_you_mean
from stages.plan.profiles import NAME as PROFILE_NAME
from stages.storyboard.schema import MAX_SIDE, MIN_SIDE
from stages.storyboard.units import parse_resolution

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = PROJECT_ROOT / "conf"
PROJECT_STORYBOARDS = PROJECT_ROOT / "storyboards"


def _config_yaml() -> dict[str, Any]:
    return yaml.safe_load((CONF_DIR / "config.yaml").read_text(encoding="utf-8")) or {}


_CONFIG = _config_yaml()


def _default(key: str) -> Any:
    """The dataclass default for `key`: its value in conf/config.yaml."""
    value = _CONFIG[key]
    if isinstance(value, (dict, list)):
        return field(default_factory=lambda: copy.deepcopy(value))
    return field(default=value)


def _group_default(group: str) -> str:
    """The option conf/config.yaml's defaults list selects for a config group (engine: preview)."""
    for entry in _CONFIG.get("defaults") or []:
        if isinstance(entry, dict) and group in entry:
            return entry[group]
    raise KeyError(f"conf/config.yaml selects no default for group {group!r}")


class ConfigInvalid(ValueError):
    """A bad setting or command-line value; reported like a storyboard problem (exit 2)."""


@dataclass
class RenderSettings:
    storyboard: str
    cwd: str = "."  # relative paths (storyboard, output_dir, cache_dir) resolve from here
    # Every default below is conf/config.yaml's (see the comments there).
    storyboards_dir: str | None = _default("storyboards_dir")
    output_dir: str = _default("output_dir")
    cache_dir: str | None = _default("cache_dir")
    shots: list[str] | None = _default("shots")
    dry_run: bool = _default("dry_run")
    fps: int | None = _default("fps")
    resolution: str | None = _default("resolution")  # "WxH": overrides the storyboard's
    # The engine group's choice (conf/engine/<name>.yaml); the CLI passes the composed file.
    engine: dict[str, Any] = field(default_factory=lambda: {"name": _group_default("engine")})
    # profile=NAME on the command line (stages.plan.profiles): replaces the storyboard's profiles.
    profile: str | None = _default("profile")
    # engine.options keys set on the command line: a profile's options never override them.
    engine_cli_options: list[str] = field(default_factory=list)
    # The post and output groups' contents as the command line set them; empty: the storyboard's
    # own `post:` / `output:` (validated against conf/post/ and the output defaults) apply.
    post: list[Any] = field(default_factory=list)
    post_override: bool = False
    output: dict[str, Any] = field(default_factory=dict)
    workers: int = _default("workers")
    retries: int = _default("retries")
    retry_delay: float = _default("retry_delay")
    # Under -m multirun, each job renders into renders/NAME/<variant>/ (its overrides), so jobs
    # that differ in engine or fps never overwrite each other.
    variant: str | None = None
    # Shared storage for cache and outputs (`storage:`); see flows/config/storage.py.
    storage: dict[str, Any] = _default("storage")
    # Where storyboard images may come from (`images:`); see flows/config/policies.py.
    images: dict[str, Any] = _default("images")
    # Generated keyframes (`keyframes:`): the image engine for blocks that name none.
    keyframes: dict[str, Any] = _default("keyframes")
    # Depth estimation (`depth:`): the local depth model's folder for `depth: estimate` shots
    # and depth control videos.
    depth: dict[str, Any] = _default("depth")
    # Pose estimation (`pose:`): the local ViTPose model's folder for pose control videos and
    # wan_animate's driving videos.
    pose: dict[str, Any] = _default("pose")
    disk_check: bool = _default("disk_check")  # refuse a render the free disk cannot hold
    # What the manifest embedded in the videos may carry (`provenance:`).
    provenance: dict[str, Any] = _default("provenance")
    progress: str = _default("progress")  # console progress: auto | bars | lines
    # watch=true: render, then re-render on every save of the storyboard (flows/pipeline/watch.py).
    watch: bool = _default("watch")
    watch_interval: float = _default("watch_interval")  # seconds between checks of the file
    watch_max_runs: int | None = _default("watch_max_runs")  # stop after this many renders
    # Apprise URLs told when the render ends or fails (flows/pipeline/notify.py); the
    # storyboard's own `notify:` adds to them.
    notify: list[str] = _default("notify")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RenderSettings":
        return cls(**data)

    def resolution_size(self) -> tuple[int, int] | None:
        """`resolution` as (width, height), range-checked like a storyboard's; None if unset."""
        if self.resolution is None:
            return None
        width, height = parse_resolution(str(self.resolution))
        if not all(MIN_SIDE <= side <= MAX_SIDE for side in (width, height)):
            raise ValueError(f"each side must be {MIN_SIDE}..{MAX_SIDE}, e.g. resolution=256x144")
        return width, height

    def path(self, value: str) -> Path:
        return (Path(self.cwd) / value).resolve()

    def check(self) -> None:
        problems = []
        if not self.storyboard:
            problems.append("storyboard= is required, e.g. `python -m flows.render "
                            "storyboard=ep01`")
        if not isinstance(self.output_dir, str) or not self.output_dir:
            problems.append(f"output_dir={self.output_dir!r}: give a folder, e.g. "
                            "output_dir=renders")
        if not isinstance(self.workers, int) or self.workers < 1:
            problems.append(f"workers={self.workers!r}: must be a whole number >= 1")
        if not isinstance(self.retries, int) or self.retries < 0:
            problems.append(f"retries={self.retries!r}: must be a whole number >= 0")
        if self.fps is not None and (not isinstance(self.fps, int) or not 1 <= self.fps <= 120):
            problems.append(f"fps={self.fps!r}: must be a whole number in 1..120")
        if self.resolution is not None:
            try:
                self.resolution_size()
            except ValueError as exc:
                problems.append(f"resolution={self.resolution!r}: {exc}")
        if self.profile is not None and not (isinstance(self.profile, str)
                                             and PROFILE_NAME.match(self.profile)):
            problems.append(f"profile={self.profile!r}: give a profile name, e.g. "
                            f"profile=draft (see the engine config's profiles:)")
        if self.shots is not None and not (
            isinstance(self.shots, list) and all(isinstance(s, str) for s in self.shots)
        ):
            problems.append(f"shots={self.shots!r}: give a list of shot ids, e.g. shots=[s01,s03]")
        problems += self._check_view()
        if problems:
            raise ConfigInvalid("\n".join(problems))

    def _check_view(self) -> list[str]:
        """The user's view: progress display and watch mode."""
        problems = []
        if self.progress not in ("auto", "bars", "lines"):
            problems.append(f"progress={self.progress!r}: must be auto, bars or lines")
        if not isinstance(self.watch, bool):
            problems.append(f"watch={self.watch!r}: must be true or false")
        interval = self.watch_interval
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) \
                or not 0 < interval <= 60:
            problems.append(f"watch_interval={interval!r}: must be a number of seconds in (0, 60]")
        runs = self.watch_max_runs
        if runs is not None and (isinstance(runs, bool) or not isinstance(runs, int) or runs < 1):
            problems.append(f"watch_max_runs={runs!r}: must be a whole number >= 1 (or null)")
        if not isinstance(self.disk_check, bool):
            problems.append(f"disk_check={self.disk_check!r}: must be true or false")
        return problems


def post_presets() -> dict[str, list[dict[str, Any]]]:
    """conf/post/*.yaml by name: the presets a storyboard's `post:` list may name."""
    presets = {}
    for path in sorted((CONF_DIR / "post").glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        presets[path.stem] = list(data.get("chain") or [])
    return presets


def storyboard_names(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def find_storyboard(settings: RenderSettings) -> Path:
    """NAME -> storyboards/NAME.yaml, looked up in storyboards_dir, ./storyboards, then the
    project's own storyboards/; a value ending in .yaml/.yml or containing '/' is a path."""
    name = settings.storyboard
    if name.endswith((".yaml", ".yml")) or "/" in name or "\\" in name:
        path = settings.path(name)
        if path.is_file():
            return path
        raise ConfigInvalid(f"storyboard={name}: no such file ({path})")
    folders = []
    if settings.storyboards_dir:
        folders.append(settings.path(settings.storyboards_dir))
    folders += [settings.path("storyboards"), PROJECT_STORYBOARDS]
    for folder in folders:
        for suffix in (".yaml", ".yml"):
            candidate = folder / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
    known = sorted({n for folder in folders for n in storyboard_names(folder)})
    hint = did_you_mean(name, known, sentence=True)
    looked = ", ".join(str(f) for f in dict.fromkeys(folders))
    raise ConfigInvalid(f"storyboard={name}: no {name}.yaml in {looked}.{hint} "
                        f"Known storyboards: {', '.join(known) or 'none'}")

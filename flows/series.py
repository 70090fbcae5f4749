"""`python -m flows.series series=NAME [key=value ...]`: render every episode of a series.

A series is `conf/series/NAME.yaml`: its episodes (storyboard names, paths or globs), the render
settings they share (engine, resolution, post, output, ...: any key of conf/config.yaml; a
storyboard's own `post:`/`output:` still win, the command line wins over everything) and where
finished episodes are published (flows/publish.py). Unchanged episodes come entirely from the
cache. The run ends with a summary (episodes rendered / cached / failed, wall time) and a Prefect
markdown artifact `series-NAME` with a row per episode and its contact sheet.

Episodes render in this process one after another, or, with `series.render_deployment=render/NAME`
(the nightly deployment sets it), as runs of that deployment: the work pool's workers take them in
parallel, one per GPU. The flow takes JSON-friendly parameters (series name, override list), so a
deployment or a schedule can run it; the CLI is a thin wrapper over the same flow.

Exit status: 0 every episode rendered (or planned, with dry_run=true); 1 an episode failed (the
others still render; rerun to resume) or the run failed (a short message; `--debug` or
REELFORGE_DEBUG=1 adds the traceback); 2 invalid series or config (nothing rendered); 130 Ctrl-C;
143 SIGTERM (a clean stop, the Prefect run ends Cancelled).
"""

from __future__ import annotations

import base64
import datetime as _dt
import fnmatch
import glob
import io
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # the CLI: quiet Prefect's console logging before it is imported
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from prefect import flow, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from flows.compose import check_overrides, compose_config, compose_settings
from flows.publish import EpisodeFiles, PublishConfig, PublishFailed, publish_episode
from flows.settings import (CONF_DIR, PROJECT_STORYBOARDS, ConfigInvalid, RenderSettings,
                            find_storyboard, storyboard_names)
from flows.storage import filesystem, layout, open_storage
from flows.hydra_cli import (EXIT_FAILED, EXIT_INVALID, EXIT_OK, Terminated, hydra_exit_code,
                             job_status)
from flows.prefect_api import (PrefectUnavailable, cancel_on_sigterm, ensure_api,
                               quiet_console_tracebacks)

SERIES_DIR = CONF_DIR / "series"
# How often a series run polls the episode runs it dispatched (seconds).
POLL_S = float(os.environ.get("REELFORGE_SERIES_POLL_S", "2"))


def report(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


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


# --- one episode -------------------------------------------------------------------------------


@dataclass
class EpisodeResult:
    episode: str
    status: str  # rendered | cached | failed
    seconds: float = 0.0
    segments_rendered: int = 0
    segments_cached: int = 0
    duration_s: float = 0.0
    video: str | None = None
    contact_sheet: str | None = None
    flow_run_id: str | None = None
    publish: str = "off"
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "extra"}
        out.update(self.extra)
        return out


def _one_line(exc: BaseException | str) -> str:
    text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def episode_folder(settings: RenderSettings, name: str) -> Path:
    """The episode's render folder on this machine; for an fsspec URL root, the video, contact
    sheet and manifest a worker uploaded are fetched into the local copy first."""
    where = layout(settings)
    folder = where.out_root / name
    if where.remote_outputs:
        fs = filesystem(where.remote_outputs)
        remote = f"{where.remote_outputs}/{name}"
        manifest = json.loads(fs.cat_file(f"{remote}/manifest.json"))
        folder.mkdir(parents=True, exist_ok=True)
        for rel in (manifest["video"], manifest["contact_sheet"], "manifest.json"):
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(f"{remote}/{rel}", str(folder / rel))
    return folder


def finish_episode(plan: SeriesPlan, episode: Episode, folder: Path, seconds: float,
                   flow_run_id: str | None = None) -> EpisodeResult:
    """The result row for a rendered episode in `folder`, after its publish step."""
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    files = EpisodeFiles.of(folder, episode.name, manifest)
    rendered = int(manifest.get("segments_rendered", 0))
    result = EpisodeResult(
        episode.name, "rendered" if rendered else "cached", seconds, rendered,
        int(manifest.get("segments_cached", 0)), float(manifest.get("duration_s", 0.0)),
        str(files.video), str(files.contact_sheet), flow_run_id)
    _, store = open_storage(episode.settings)
    try:
        result.publish = publish_episode(plan.publish, files, manifest["key"], store)
    except PublishFailed as exc:
        result.status, result.publish, result.error = "failed", "failed", _one_line(str(exc))
    return result


def render_here(plan: SeriesPlan, episode: Episode) -> EpisodeResult:
    """Render one episode in this process (a subflow of the series run)."""
    from flows.render_flow import run_flow

    started = time.perf_counter()
    try:
        run_flow(episode.settings)
        folder = layout(episode.settings).out_root / episode.name
        return finish_episode(plan, episode, folder, time.perf_counter() - started)
    except Exception as exc:  # noqa: BLE001 - one failed episode must not stop the others
        return EpisodeResult(episode.name, "failed", time.perf_counter() - started,
                             error=_one_line(exc))


def render_on_workers(plan: SeriesPlan, episode: Episode) -> EpisodeResult:
    """Run the render deployment for one episode and wait; a worker of the pool renders it."""
    from prefect.deployments import run_deployment

    started = time.perf_counter()
    parameters: dict[str, Any] = {"storyboard": episode.storyboard, "overrides": plan.overrides}
    if plan.cwd:
        parameters["cwd"] = plan.cwd
    try:
        run = run_deployment(plan.render_deployment, parameters=parameters,
                             flow_run_name=f"{plan.name}-{episode.name}", poll_interval=POLL_S,
                             tags=[f"series:{plan.name}"])
        seconds = time.perf_counter() - started
        if run.state is None or not run.state.is_completed():
            state = run.state.name if run.state else "unknown"
            message = run.state.message if run.state and run.state.message else ""
            return EpisodeResult(episode.name, "failed", seconds, flow_run_id=str(run.id),
                                 error=_one_line(f"render run {run.name} ended {state}: "
                                                 f"{message}"))
        folder = episode_folder(episode.settings, episode.name)
        return finish_episode(plan, episode, folder, seconds, str(run.id))
    except Exception as exc:  # noqa: BLE001 - one failed episode must not stop the others
        return EpisodeResult(episode.name, "failed", time.perf_counter() - started,
                             error=_one_line(exc))


# --- summary and artifact ----------------------------------------------------------------------


def summarize(plan: SeriesPlan, results: list[EpisodeResult], seconds: float) -> dict[str, Any]:
    count = {s: sum(r.status == s for r in results) for s in ("rendered", "cached", "failed")}
    return {"series": plan.name, "episodes": [r.as_dict() for r in results], **count,
            "wall_s": round(seconds, 3),
            "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def summary_lines(summary: dict[str, Any]) -> list[str]:
    lines = [f"Series {summary['series']}: {len(summary['episodes'])} episodes in "
             f"{summary['wall_s']:.1f}s: {summary['rendered']} rendered, {summary['cached']} "
             f"cached, {summary['failed']} failed"]
    for row in summary["episodes"]:
        if row["status"] == "failed":
            lines.append(f"  {row['episode']:<14} failed    {row['error']}")
        else:
            publish = "" if row["publish"] == "off" else f"  ({row['publish']})"
            lines.append(f"  {row['episode']:<14} {row['status']:<9} segments "
                         f"{row['segments_rendered']} rendered, {row['segments_cached']} cached"
                         f"  {row['video']}{publish}")
    return lines


def _thumbnail_uri(path: str | None, width: int = 480) -> str | None:
    """The contact sheet as a small inline JPEG, so the artifact shows it without file access."""
    if not path or not Path(path).is_file():
        return None
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        if img.width > width:
            img = img.resize((width, max(1, round(img.height * width / img.width))))
        buffer = io.BytesIO()
        img.save(buffer, format="JPEG", quality=70)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def artifact_markdown(summary: dict[str, Any]) -> str:
    lines = [f"# Series {summary['series']}", "",
             f"{len(summary['episodes'])} episodes: **{summary['rendered']} rendered, "
             f"{summary['cached']} cached, {summary['failed']} failed** in "
             f"{summary['wall_s']:.1f} s (finished {summary['finished']})", "",
             "| episode | status | segments rendered / cached | length | video | publish | "
             "contact sheet |",
             "|---|---|---|---|---|---|---|"]
    for row in summary["episodes"]:
        if row["status"] == "failed":
            lines.append(f"| {_cell(row['episode'])} | **failed** | | | | {row['publish']} | "
                         f"{_cell(row['error'])} |")
            continue
        uri = _thumbnail_uri(row["contact_sheet"])
        sheet = f"![{row['episode']}]({uri})" if uri else _cell(row["contact_sheet"])
        lines.append(f"| {_cell(row['episode'])} | {row['status']} | "
                     f"{row['segments_rendered']} / {row['segments_cached']} | "
                     f"{row['duration_s']:.1f} s | `{_cell(row['video'])}` | {row['publish']} | "
                     f"{sheet} |")
    return "\n".join(lines) + "\n"


def artifact_key(series: str) -> str:
    return "series-" + "".join(c if c.isalnum() else "-" for c in series.lower())


class SeriesFailed(RuntimeError):
    """One or more episodes failed; the others rendered, and everything finished is cached."""


# --- the flow and the CLI ----------------------------------------------------------------------


# A task per episode, so the deployment runs are in flight together and the workers share them.
episode_task = task(render_on_workers, name="episode", cache_policy=NO_CACHE,
                    persist_result=False, task_run_name="episode-{episode.name}")


@flow(name="series", validate_parameters=False, log_prints=False)
@cancel_on_sigterm  # SIGTERM: a clean stop, the run ends Cancelled
def series_flow(series: str, overrides: list[str] | None = None,
                render_deployment: str | None = None, cwd: str | None = None) -> dict[str, Any]:
    """Render every episode of conf/series/<series>.yaml with Hydra `overrides`.
    `render_deployment` (e.g. render/default) sends each episode to the work pool's workers as a
    run of that deployment; unset (and unset in the series config), episodes render in this
    process. Returns the summary; fails if any episode failed (the others still render)."""
    started = time.perf_counter()
    plan = load_series(series, overrides, cwd, render_deployment)
    where = f"on {plan.render_deployment} workers" if plan.render_deployment else "here"
    report(f"Series {plan.name}: {len(plan.episodes)} episodes "
           f"({', '.join(e.name for e in plan.episodes)}), rendering {where}")
    if plan.render_deployment:
        futures = [episode_task.submit(plan, e) for e in plan.episodes]
        results = [f.result() for f in futures]
    else:
        results = [render_here(plan, e) for e in plan.episodes]
    summary = summarize(plan, results, time.perf_counter() - started)
    create_markdown_artifact(artifact_markdown(summary), key=artifact_key(plan.name),
                             description=f"Series {plan.name}: episodes, status, contact sheets")
    for line in summary_lines(summary):
        report(line)
    if summary["failed"]:
        failed = [r for r in results if r.status == "failed"]
        raise SeriesFailed("; ".join(f"{r.episode}: {r.error}" for r in failed))
    return summary


def _quiet_prefect() -> None:
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_series(series: str, overrides: list[str], cwd: str,
               render_deployment: str | None = None) -> int:
    """The CLI's work: check the series, then run the flow. Returns the exit status."""
    from flows.prepare import prepare, print_plan
    from stages.storyboard.problems import StoryboardInvalid

    try:
        plan = load_series(series, overrides, cwd, render_deployment)
        if any(e.settings.dry_run for e in plan.episodes):
            for episode in plan.episodes:
                print_plan(prepare(episode.settings))
            return EXIT_OK
    except (ConfigInvalid, StoryboardInvalid) as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("Nothing was rendered.", file=sys.stderr)
        return EXIT_INVALID
    _quiet_prefect()
    from prefect.exceptions import CancelledRun

    try:
        ensure_api()
        quiet_console_tracebacks()
        series_flow(series=series, overrides=overrides, render_deployment=render_deployment,
                    cwd=cwd)
    except SeriesFailed as exc:
        print(f"error: series {series}: {exc}", file=sys.stderr)
        print("Finished segments are cached; rerun the same command to resume.", file=sys.stderr)
        return EXIT_FAILED
    except PrefectUnavailable as exc:
        print(f"error: {exc.user_message}", file=sys.stderr)
        return EXIT_FAILED
    except CancelledRun as exc:
        raise Terminated(str(exc)) from None  # job_status: 143 and the resume hint
    return EXIT_OK


_exit_codes: list[int] = []


def _hydra_main():
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig

    @hydra.main(config_path="../conf", config_name="config", version_base="1.3")
    def main(cfg: DictConfig) -> None:
        hydra_cfg = HydraConfig.get()
        name = hydra_cfg.runtime.choices.get("series")
        if not name or name == "null":
            print(f"error: series=NAME is required, e.g. `python -m flows.series series=demo` "
                  f"(known series: {', '.join(known_series()) or 'none'})", file=sys.stderr)
            _exit_codes.append(EXIT_INVALID)
            return
        overrides = [o for o in hydra_cfg.overrides.task
                     if o.split("=", 1)[0].lstrip("+~") != "series"]
        with job_status(_exit_codes, f"series {name}"):
            _exit_codes.append(run_series(name, overrides, hydra.utils.get_original_cwd()))

    return main


def cli() -> int:
    return hydra_exit_code(_hydra_main(), _exit_codes,
                           "Nothing was rendered: fix the command line or config above.")


if __name__ == "__main__":
    sys.exit(cli())

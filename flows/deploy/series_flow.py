"""The series flow (prefect.yaml's nightly deployment `series/demo` runs it): render every episode
of a series, here one after another or, with `render_deployment=render/NAME`, as runs of that
deployment on the work pool's workers (one per GPU); then publish each finished episode and
report. It takes JSON-friendly parameters (series name, override list), so a deployment or a
schedule can run it; `python -m flows.series` is a thin wrapper over it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.config.settings import RenderSettings
from flows.config.storage import filesystem, layout, open_storage
from flows.deploy.publish import EpisodeFiles, PublishFailed, publish_episode
from flows.deploy.series_plan import Episode, SeriesPlan, load_series
from flows.deploy.series_summary import (EpisodeResult, artifact_key, artifact_markdown, summarize,
                                         summary_lines)
from flows.pipeline import notify, run_meta
from flows.pipeline.flow import run_flow
from flows.pipeline.progress import say as report  # a console line, also a run log
from flows.runtime.prefect_api import cancel_on_sigterm

# How often a series run polls the episode runs it dispatched (seconds).
POLL_S = float(os.environ.get("REELFORGE_SERIES_POLL_S", "2"))


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
    from prefect import tags

    started = time.perf_counter()
    try:
        with tags(*run_meta.series_tags(plan.name)):  # the episode run: `demo/ep01`, series:demo
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
                             flow_run_name=run_meta.run_name(episode.name, series=plan.name),
                             poll_interval=POLL_S, tags=run_meta.series_tags(plan.name))
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


class SeriesFailed(RuntimeError):
    """One or more episodes failed; the others rendered, and everything finished is cached."""



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
    run_meta.label_run(f"series {plan.name}", run_meta.series_tags(plan.name))
    try:
        return _render_series(plan, started)
    except BaseException as exc:
        if not isinstance(exc, SeriesFailed):  # that one was told, with every episode
            tell_series(plan, started, None, exc)
        raise


def tell_series(plan: SeriesPlan, started: float, summary: dict[str, Any] | None,
                exc: BaseException | None = None) -> None:
    """The series' one notification (`notify:` of the config the episodes are composed with):
    each episode's status and time, the contact sheets attached."""
    urls = notify.targets(*(e.settings.notify for e in plan.episodes))
    if not urls:
        return
    status = notify.status_of(exc) if summary is None else \
        ("failed" if summary["failed"] else "completed")
    notice = notify.Notice(f"series {plan.name}", status, time.perf_counter() - started,
                           run_url=run_meta.run_url())
    for row in (summary or {}).get("episodes", []):
        notice.lines.append(f"episode {row.get('episode')}: {row.get('status')}, "
                            f"{float(row.get('seconds') or 0):.1f}s"
                            + (f" ({row['error']})" if row.get("error") else ""))
        if row.get("contact_sheet"):
            notice.attachments.append(Path(row["contact_sheet"]))
    if exc is not None and summary is None:
        notice.add_error(exc)
    notify.send(urls, notice, warn=report)


def _render_series(plan: SeriesPlan, started: float) -> dict[str, Any]:
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
    tell_series(plan, started, summary)
    if summary["failed"]:
        failed = [r for r in results if r.status == "failed"]
        raise SeriesFailed("; ".join(f"{r.episode}: {r.error}" for r in failed))
    return summary

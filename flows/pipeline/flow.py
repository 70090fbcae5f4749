"""The Prefect flow that renders a storyboard: a task per segment, per shot, and the assembly.

Chained segments receive their upstream's future, so Prefect runs them in order; independent
shots run concurrently on the thread pool. Every result lives in the content-addressed cache, so
a failed shot keeps the segments that finished, and a rerun renders only what is missing.
"""

from __future__ import annotations

import errno
import time
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from flows.pipeline import progress as live
from flows.pipeline import notify, run_meta
from flows.config.compose import compose_settings
from flows.runtime.hydra_cli import Terminated, terminate_requested
from flows.runtime.stop import stop_requested
from flows.runtime.prefect_api import cancel_on_sigterm, ensure_api, quiet_console_tracebacks
from engine.base import EngineLoadError, is_out_of_memory
from flows.pipeline.prepare import Prepared, engine_name, prepare
from flows.pipeline.report import publish_render, storyboard_text
from flows.pipeline.preflight import check_disk_space
from flows.pipeline.segment_guard import segment_guard
from flows.config.settings import RenderSettings
from flows.config.storage import upload_outputs
from stages.render.assemble import EpisodeResult, assemble_episode
from stages.outputs.manifest import build_manifest
from stages.plan.build import SegmentJob, ShotPlan
from stages.plan.keyframes import unique_keyframes
from stages.plan.model import KeyframeJob
from stages.render.keyframes import KeyframeResult, as_job, render_keyframe
from stages.render.steps import SegmentResult, ShotResult, finish_shot, render_segment


def report(line: str) -> None:
    # One write per line, so lines from concurrent tasks never interleave; also a run log.
    live.say(line)


def is_transient(exc: BaseException) -> bool:
    """Worth a retry: I/O hiccups and out-of-memory. Everything else fails fast."""
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return False
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return False  # a full disk stays full: fail now, with the message, instead of retrying
    if isinstance(exc, (OSError, MemoryError, TimeoutError, ConnectionError)):
        return True
    return is_out_of_memory(exc)  # engine.base knows every library's out-of-memory error


def _retry_condition(task_obj, task_run, state) -> bool:
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - no result to look at: do not retry blindly
        return False
    return isinstance(exc, BaseException) and is_transient(exc)


@task(name="segment", cache_policy=NO_CACHE, persist_result=False,
      retry_condition_fn=_retry_condition, task_run_name="segment-{job.shot_id}-{job.index}")
def segment_task(job: SegmentJob, upstream: SegmentResult | None, prepared: Prepared,
                 anchor: SegmentResult | None = None,
                 end: SegmentResult | None = None,
                 keyframes: list[KeyframeResult] | None = None) -> SegmentResult:
    with segment_guard(prepared.store, job.key):  # one worker per segment, one segment per GPU
        result = render_segment(job, upstream, prepared.engine, prepared.store, report,
                                progress=live.current().steps(job), fallback=prepared.fallback,
                                fallback_params=prepared.fallback_params, anchor_source=anchor,
                                end_source=end, keyframes=keyframes or (),
                                stills=prepared.stills)
    live.current().segment_done(job, result.cached)
    return result


@task(name="keyframe", cache_policy=NO_CACHE, persist_result=False,
      retry_condition_fn=_retry_condition, task_run_name="keyframe-{job.shot_id}-{job.which}")
def keyframe_task(job: KeyframeJob, prepared: Prepared) -> KeyframeResult:
    with segment_guard(prepared.store, job.key):  # one worker per keyframe, as per segment
        result = render_keyframe(job, prepared.keyframe_engines[job.engine], prepared.store,
                                 report, progress=live.current().keyframe_steps(job))
    live.current().keyframe_done(job, result.cached)
    return result


@task(name="shot", cache_policy=NO_CACHE, persist_result=False,
      retry_condition_fn=_retry_condition, task_run_name="shot-{shot.id}")
def shot_task(shot: ShotPlan, segments: list[SegmentResult], prepared: Prepared,
              keyframes: list[KeyframeResult] | None = None) -> ShotResult:
    plan = prepared.plan
    # A keyframe shared by several jobs (unique_keyframes) comes back once: each job's own copy.
    keyframes = [as_job(r, k) for r, k in zip(keyframes or (), shot.keyframes)]
    result = finish_shot(shot, segments, plan.post, plan.fps, prepared.store, report,
                         progress=live.current().post(shot), keyframes=keyframes)
    live.current().shot_done(shot, result.cached)
    return result


@task(name="assemble", cache_policy=NO_CACHE, persist_result=False, task_run_name="assemble")
def assemble_task(shots: list[ShotResult], prepared: Prepared) -> EpisodeResult:
    # shots=[...] renders name their files apart: never replace the full render's
    return assemble_episode(prepared.plan, shots, prepared.store, prepared.out_dir, prepared.subset)


class RenderFailed(RuntimeError):
    """One or more shots failed; finished segments stay cached."""


def load_engine(prepared: Prepared) -> None:
    """Load the engine's weights once, here, outside the per-segment retries (a retry must
    never reload a model), and only when some segment is not cached. A load failure leaves the
    segments to the fallback engine when there is one."""
    plan, store = prepared.plan, prepared.store
    # Image engines first: keyframes render before the segments that start from them.
    for name, engine in prepared.keyframe_engines.items():
        if engine is not prepared.engine and not all(
                store.has("keyframe", k.key) for k in plan.keyframes() if k.engine == name):
            load_keyframe_engine(name, engine)
    if all(store.has("segment", job.key) for job in plan.segments()):
        return
    started = time.perf_counter()
    try:
        prepared.engine.load()
    except EngineLoadError as exc:
        if prepared.fallback is None:
            raise RenderFailed(f"{exc}. Nothing was rendered; fix engine.model or set a "
                               f"fallback engine (fallback: svd in the storyboard)") from None
        report(f"warning: {exc}; segments render on the fallback engine "
               f"{prepared.fallback.spec.name!r}")
        return
    seconds = time.perf_counter() - started
    if seconds > 0.5:
        report(f"Loaded engine {prepared.engine.spec.name} in {seconds:.1f}s")


def load_keyframe_engine(name: str, engine) -> None:
    """Load an image engine for keyframes, or stop the render before any work. No fallback:
    a keyframe's cache key names the engine that made it, so another engine's image under that
    key would stay wrong after the engine is fixed, and a shot's start image silently drawn by a
    different model is not what the storyboard asked for."""
    try:
        engine.load()
    except EngineLoadError as exc:
        raise RenderFailed(
            f"keyframe engine {name!r} could not load: {exc}. Nothing was rendered (no "
            f"keyframe, no segment); fix `model:` in conf/engine/{name}.yaml (the keyframe "
            f"engine's config), or generate these keyframes with another image engine "
            f"(keyframes.engine=NAME, or `engine:` in the shot's generate block)") from None


def _delays(settings: RenderSettings) -> list[float]:
    return [settings.retry_delay * 2**i for i in range(settings.retries)]


def _failure(future, what: str) -> str | None:
    state = future.state
    if state.is_completed():
        return None
    try:
        exc = future.result(raise_on_failure=False)
    except Exception as err:  # noqa: BLE001 - report whatever stopped it
        exc = err
    if isinstance(exc, BaseException):
        return f"{what}: {type(exc).__name__}: {exc}"
    return f"{what}: {state.name} (an earlier segment it depends on failed)"


@flow(name="render", validate_parameters=False, log_prints=False)
@cancel_on_sigterm  # SIGTERM: a clean stop, the run ends Cancelled (flows/runtime/prefect_api.py)
def render_flow(settings: dict[str, Any] | None = None, storyboard: str | None = None,
                overrides: list[str] | None = None, cwd: str | None = None) -> dict[str, Any]:
    """Render a storyboard; returns the manifest. The CLI passes `settings`
    (RenderSettings.to_dict()); a deployment run passes `storyboard` and a list of Hydra
    `overrides`, composed here exactly as the CLI would compose them (flows/config/compose.py)."""
    started = time.perf_counter()
    chosen = (RenderSettings.from_dict(settings) if settings is not None
              else compose_settings(storyboard, overrides, cwd))
    ending = _Ending(chosen, started)
    try:
        manifest = _render(chosen, started, ending)
    except BaseException as exc:
        ending.send(exc)  # notify: the render failed or was stopped
        raise
    ending.send(None, manifest)
    return manifest


class _Ending:
    """Who is told how the render ended (`notify:`, flows/pipeline/notify.py), and with what."""

    def __init__(self, settings: RenderSettings, started: float) -> None:
        self.urls = notify.targets(settings.notify)
        self.name = Path(settings.storyboard).stem or "storyboard"
        self.variant = settings.variant
        self.started = started
        self.out_dir: Path | None = None

    def prepared(self, prepared: Prepared) -> None:
        self.name = prepared.plan.name
        self.out_dir = prepared.out_dir
        self.urls = notify.targets(self.urls, prepared.storyboard.model.notify)

    def send(self, exc: BaseException | None, manifest: dict[str, Any] | None = None) -> None:
        if not self.urls or run_meta.current_series():  # an episode: the series run tells
            return
        what = f"{self.name} [{self.variant}]" if self.variant else self.name
        notice = notify.Notice(f"episode {what}", notify.status_of(exc),
                               time.perf_counter() - self.started, run_url=run_meta.run_url())
        if manifest is not None and self.out_dir is not None:
            notice.lines.append(f"video: {self.out_dir / manifest['video']}")
            notice.lines.append(f"segments: {manifest['segments_rendered']} rendered, "
                                f"{manifest['segments_cached']} cached")
            notice.attachments.append(self.out_dir / manifest["contact_sheet"])
        elif exc is not None:
            notice.add_error(exc)
        notify.send(self.urls, notice, warn=report)


def _render(chosen: RenderSettings, started: float, ending: _Ending) -> dict[str, Any]:
    prepared = prepare(chosen)
    ending.prepared(prepared)
    series = run_meta.current_series()
    run_meta.label_run(run_meta.run_name(prepared.plan.name, chosen.variant, series),
                       run_meta.render_tags(prepared.plan.name, engine_name(chosen), series))
    prepared.store.remove_dead_temps()  # what killed renders left in the cache: space back now
    check_disk_space(prepared)  # before anything is written
    view = live.start(prepared, started)  # console progress and the Prefect progress artifact
    source = storyboard_text(prepared)  # for the provenance: the file as rendered
    plan, options = prepared.plan, prepared.settings
    segment = segment_task.with_options(retries=options.retries,
                                        retry_delay_seconds=_delays(options) or 0)
    report(f"Rendering {plan.name}: {len(plan.shots)} shots, "
           f"{sum(len(s.segments) for s in plan.shots)} segments, engine {engine_name(options)}")
    for note in plan.notes:
        report(f"note: {note}")
    for warning in plan.warnings:
        report(f"warning: {warning}")
    load_engine(prepared)

    seg_futures: dict[tuple[str, int], Any] = {}
    shot_futures = {}
    def future_of(ref) -> Any:
        return seg_futures.get((ref.shot_id, ref.index)) if ref is not None else None

    # Keyframes first: every segment that starts or ends on one waits for it.
    keyframe_futures = {job.key: keyframe_task.submit(job, prepared)
                        for job in unique_keyframes(plan)}
    # Bridges (generated transitions) last: they wait on segments of the shots around them.
    for shot in sorted(plan.shots, key=lambda s: s.bridge):
        futures = []
        shot_keyframes = [keyframe_futures[k.key] for k in shot.keyframes]
        for job in shot.segments:
            upstream = future_of(job.start.upstream)
            # Frames that come from other segments (stages.plan.build.FrameRef): the shot's anchor,
            # a generated transition's end frame.
            anchor = future_of(job.anchor.segment if job.anchor is not None else None)
            end = future_of(job.end_from.segment if job.end_from is not None else None)
            needs = [keyframe_futures[k] for k in (job.start_keyframe, job.end_keyframe) if k]
            future = segment.submit(job, upstream, prepared, anchor, end, needs)
            seg_futures[(job.shot_id, job.index)] = future
            futures.append(future)
        if shot.include:
            shot_futures[shot.id] = shot_task.submit(shot, futures, prepared, shot_keyframes)

    failures = []
    for job in unique_keyframes(plan):
        keyframe_futures[job.key].wait()
        problem = _failure(keyframe_futures[job.key], f"shot {job.shot_id} {job.which} keyframe")
        if problem:
            failures.append(problem)
    for shot in plan.shots:
        for job in shot.segments:
            future = seg_futures[(job.shot_id, job.index)]
            future.wait()
            problem = _failure(future, f"shot {job.shot_id} segment {job.index}")
            if problem:
                failures.append(problem)
    for shot_id, future in shot_futures.items():
        future.wait()
        problem = _failure(future, f"shot {shot_id} post chain")
        if problem and not any(f.startswith(f"shot {shot_id} ") for f in failures):
            failures.append(problem)
    if failures:
        raise RenderFailed("; ".join(failures))

    shot_results = [shot_futures[s.id].result() for s in plan.included()]
    try:
        episode = assemble_task.submit(shot_results, prepared).result()
    except OSError as exc:  # a full disk, a read-only folder: the message, not a traceback
        raise RenderFailed(f"assembling the episode: {exc}") from None
    seconds = view.elapsed()  # the clock of the console's progress (and "Done in")
    manifest = build_manifest(plan, shot_results, episode, prepared.out_dir,
                              {"total_s": seconds}, engine_name(options),
                              runtime=engine_runtime(prepared.engine))
    # manifest.json, the manifest inside the MP4, report.html and the Prefect report artifact
    manifest = publish_render(prepared, manifest, shot_results, source)
    view.finish()
    upload_outputs(options, prepared.out_dir)  # storage.root= an fsspec URL: mirror the folder
    return manifest


def engine_runtime(engine) -> dict[str, Any]:
    """How the engine ran this render (the attention kernel `auto` chose, compile, quantize):
    {} for engines without such choices, or when every segment came from the cache."""
    runtime = getattr(engine, "runtime", None)
    return dict(runtime()) if callable(runtime) else {}


def run_flow(settings: RenderSettings) -> dict[str, Any]:
    """Run the flow with the task runner sized by `settings.workers`. Starts Prefect's local API
    patiently first (PrefectUnavailable when it cannot); a run stopped by SIGTERM (Cancelled)
    raises Terminated, one stopped by Ctrl-C (Cancelled too) KeyboardInterrupt."""
    from prefect.exceptions import CancelledRun

    ensure_api()
    quiet_console_tracebacks()
    runner = ThreadPoolTaskRunner(max_workers=settings.workers)
    with live.console_view(settings.progress):
        try:
            return render_flow.with_options(task_runner=runner)(settings.to_dict())
        except CancelledRun as exc:
            if stop_requested() and not terminate_requested():  # Ctrl-C, recorded Cancelled
                raise KeyboardInterrupt(f"the flow run ended Cancelled: {exc}") from None
            raise Terminated(f"the flow run ended Cancelled: {exc}") from None

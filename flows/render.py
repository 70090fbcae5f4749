"""`python -m flows.render storyboard=NAME [key=value ...]`: render a storyboard to an episode.

Exit status: 0 rendered (or planned, with dry_run=true); 2 invalid storyboard or config, nothing
written; 1 a render failed (finished segments stay cached; the message names shot and segment;
no traceback unless `--debug` or REELFORGE_DEBUG=1); 130 Ctrl-C; 143 SIGTERM, a clean stop that
Prefect records as Cancelled. Every status is resumable: rerun the same command.
"""

from __future__ import annotations

import logging
import os
import sys
import time

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from flows.pipeline.prepare import prepare, print_plan
from flows.pipeline.progress import mark_start
from flows.pipeline.preflight import NotEnoughDiskSpace, check_disk_space
from flows.config.compose import settings_from_config
from flows.config.settings import ConfigInvalid, RenderSettings
from flows.runtime.stop import stop_on_sigint
from flows.runtime.hydra_cli import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK,
                                     EXIT_TERMINATED, Terminated, hydra_exit_code, job_status)
from stages.storyboard.problems import StoryboardInvalid

# Exit codes of the jobs this process ran (several under -m multirun).
_exit_codes: list[int] = []


def _variant_name(override_dirname: str, job_num: int) -> str:
    """A folder name for one multirun job, from the overrides that vary (`engine=svd,fps=12`)."""
    name = "".join(c if c.isalnum() or c in "=,._-" else "_" for c in override_dirname)
    return name[:120] or f"job{job_num}"


def run(settings: RenderSettings) -> int:
    """Render once, or with watch=true on every save of the storyboard. Returns the exit status."""
    if settings.watch and not settings.dry_run:
        from flows.pipeline.watch import watch  # re-renders on every save; Ctrl-C stops

        return watch(settings, render_once)
    return render_once(settings)


def render_once(settings: RenderSettings) -> int:
    """Validate, plan, render; print progress and a summary. Returns the exit status."""
    started = time.perf_counter()
    mark_start(started)  # the progress clock, and the report's total time, count from here
    try:
        prepared = prepare(settings)
    except (StoryboardInvalid, ConfigInvalid) as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("Nothing was rendered.", file=sys.stderr)
        return EXIT_INVALID
    if settings.dry_run:
        print_plan(prepared)
    try:
        check_disk_space(prepared)  # a dry run makes every check the render makes
    except NotEnoughDiskSpace as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if settings.dry_run:
        return EXIT_OK

    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    # Prefect's HTTP client logs every API call at INFO; the console is for render progress.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from flows.runtime.local_api import attach
    from flows.runtime.prefect_api import PrefectUnavailable

    # The machine's shared Prefect API (flows/runtime/local_api.py), before Prefect is imported.
    try:
        attach()
    except PrefectUnavailable as exc:
        print(f"error: {exc.user_message}", file=sys.stderr)
        return EXIT_FAILED
    from flows.pipeline.flow import RenderFailed, run_flow  # Prefect loads only to render

    try:
        # The flow validates and plans again from `settings` (a JSON-friendly parameter, as a
        # deployment run passes it); that costs milliseconds and keeps Prefect out of the
        # validation and dry-run paths above.
        with stop_on_sigint():
            manifest = run_flow(settings)
    except (RenderFailed, NotEnoughDiskSpace) as exc:
        print(f"error: render of {prepared.plan.name} failed: {exc}", file=sys.stderr)
        if "No space left" in str(exc):
            print("The disk is full: free some space (`python -m flows.cache prune --max-size "
                  "10GB` trims the cache) or point cache_dir= elsewhere.", file=sys.stderr)
        print("Finished segments are cached; fix the problem and run the same command again "
              "to resume.", file=sys.stderr)
        return EXIT_FAILED
    except PrefectUnavailable as exc:
        print(f"error: {exc.user_message}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"Interrupted: the render of {prepared.plan.name} stopped. Finished segments are "
              "cached; run the same command again to resume where it stopped.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated as exc:
        run_state = " and its Prefect flow run is Cancelled" if "Cancelled" in str(exc) else ""
        print(f"Stopped by SIGTERM: the render of {prepared.plan.name} stopped cleanly{run_state}. "
              "Finished segments are cached; run the same command again to resume where it "
              "stopped.", file=sys.stderr)
        return EXIT_TERMINATED
    seconds = (manifest.get("timings") or {}).get("total_s", time.perf_counter() - started)
    rendered, cached = manifest["segments_rendered"], manifest["segments_cached"]
    video = prepared.out_dir / manifest["video"]
    print(f"Done in {seconds:.1f}s: {video} ({manifest['frames']} frames, "
          f"{manifest['duration_s']:.2f}s at {manifest['fps']:g} fps); segments: {rendered} "
          f"rendered, {cached} cached")
    return EXIT_OK


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    overrides = list(hydra_cfg.overrides.task)
    cwd = hydra.utils.get_original_cwd()
    try:
        settings = settings_from_config(cfg, cwd, overrides)
        if hydra_cfg.mode == RunMode.MULTIRUN:
            settings.variant = _variant_name(hydra_cfg.job.override_dirname, hydra_cfg.job.num)
    except Exception as exc:  # noqa: BLE001 - a config value of the wrong shape
        print(f"error: bad configuration: {exc}", file=sys.stderr)
        _exit_codes.append(EXIT_INVALID)
        return
    # Whatever escapes the render is a failure (1), Ctrl-C (130) or SIGTERM (143): never "bad
    # input", which Hydra would make of it.
    with job_status(_exit_codes, f"the render of {settings.storyboard or 'the storyboard'}"):
        _exit_codes.append(run(settings))


def cli() -> int:
    """Hydra exits with 1 on a bad override before `main` runs; that is a config error (2).
    `--debug` anywhere on the command line prints tracebacks (as REELFORGE_DEBUG=1 does).
    `--help` lists the storyboard keys, overrides, presets and engines (flows.config.help)."""
    from flows.config.help import asks_for_help, print_help

    if asks_for_help():
        return print_help("render")
    return hydra_exit_code(main, _exit_codes,
                           "Nothing was rendered: fix the command line or config above "
                           "(`python -m flows.render --help` lists the options).")


if __name__ == "__main__":
    from engine.diffusers.parallel.session import launched  # under torchrun: rank 0 renders, the others follow

    sys.exit(launched(cli))

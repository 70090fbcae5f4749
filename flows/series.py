"""`python -m flows.series series=NAME [key=value ...]`: render every episode of a series.

A series is `conf/series/NAME.yaml`: its episodes (storyboard names, paths or globs), the render
settings they share (engine, resolution, post, output, ...: any key of conf/config.yaml; a
storyboard's own `post:`/`output:` still win, the command line wins over everything) and where
finished episodes are published (flows/deploy/publish.py). The flow and its parts are in
flows/deploy/ (series_plan, series_flow, series_summary). Unchanged episodes come entirely from the
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

import logging
import os
import sys

if __name__ == "__main__":  # the CLI: quiet Prefect's console logging before it is imported
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from flows.config.settings import ConfigInvalid  # noqa: E402
from flows.deploy.series_flow import SeriesFailed, series_flow  # noqa: E402
from flows.deploy.series_plan import known_series, load_series  # noqa: E402
from flows.runtime.hydra_cli import (EXIT_FAILED, EXIT_INVALID, EXIT_OK, Terminated,  # noqa: E402
                                     hydra_exit_code, job_status)
from flows.runtime.prefect_api import (PrefectUnavailable, ensure_api,  # noqa: E402
                                       quiet_console_tracebacks)


def _quiet_prefect() -> None:
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_series(series: str, overrides: list[str], cwd: str,
               render_deployment: str | None = None) -> int:
    """The CLI's work: check the series, then run the flow. Returns the exit status."""
    from flows.pipeline.prepare import prepare, print_plan
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
    from flows.config.help import asks_for_help, print_help

    if asks_for_help():  # storyboard keys, overrides, series, presets, engines
        return print_help("series")
    return hydra_exit_code(_hydra_main(), _exit_codes,
                           "Nothing was rendered: fix the command line or config above.")


if __name__ == "__main__":
    sys.exit(cli())

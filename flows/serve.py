"""`python -m flows.serve`: the nightly scheduler for a single machine, in one process.

Serves the deployments of prefect.yaml (names, parameters, schedules, concurrency limits) with
Prefect's `serve`: no work pool and no worker to start, runs execute as subprocesses of this one.
A series run's episodes (`render_deployment: render/default`) are runs of the served render
deployment, so they run here too. Stopping it (Ctrl-C) pauses the schedules it served.

    python -m flows.serve                     # every deployment in prefect.yaml
    python -m flows.serve --only demo         # just the demo series (and what it needs: add default)
    python -m flows.serve --limit 2           # at most two runs at once

Point it at a server with PREFECT_API_URL (e.g. `prefect server start` on this machine); without
one, Prefect starts a temporary local API that lives as long as this process.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from flows.config.settings import PROJECT_ROOT

PREFECT_YAML = PROJECT_ROOT / "prefect.yaml"


class ServeConfigError(ValueError):
    """prefect.yaml has a deployment this command cannot serve."""


def read_deployments(path: Path = PREFECT_YAML) -> list[dict[str, Any]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    deployments = data.get("deployments") or []
    if not isinstance(deployments, list) or not all(isinstance(d, dict) for d in deployments):
        raise ServeConfigError(f"{path}: `deployments:` must be a list of mappings")
    return deployments


def schedule_of(spec: dict[str, Any], where: str):
    """A prefect.yaml schedule entry as a Prefect Schedule (cron, interval or rrule)."""
    from prefect.schedules import Cron, Interval, RRule

    common = {"active": spec.get("active", True), "parameters": spec.get("parameters") or {}}
    if spec.get("slug"):
        common["slug"] = spec["slug"]
    if "cron" in spec:
        return Cron(spec["cron"], timezone=spec.get("timezone"), day_or=spec.get("day_or", True),
                    **common)
    if "interval" in spec:
        return Interval(timedelta(seconds=float(spec["interval"])),
                        timezone=spec.get("timezone"), **common)
    if "rrule" in spec:
        return RRule(spec["rrule"], timezone=spec.get("timezone"), **common)
    raise ServeConfigError(f"{where}: a schedule needs cron:, interval: or rrule: (got "
                           f"{sorted(spec)})")


def concurrency_of(value: Any):
    if value is None or isinstance(value, int):
        return value
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    strategy = value.get("collision_strategy", "ENQUEUE")
    return ConcurrencyLimitConfig(limit=int(value["limit"]),
                                  collision_strategy=ConcurrencyLimitStrategy(strategy))


def runner_deployments(specs: list[dict[str, Any]], only: list[str] | None = None) -> list:
    """RunnerDeployments for `specs` (prefect.yaml entries), optionally only the named ones."""
    from prefect.flows import load_flow_from_entrypoint

    chosen = [s for s in specs if not only or s.get("name") in only]
    missing = sorted(set(only or ()) - {s.get("name") for s in specs})
    if missing:
        raise ServeConfigError(f"--only {missing[0]}: prefect.yaml has no such deployment "
                               f"(it has {', '.join(str(s.get('name')) for s in specs)})")
    out = []
    for spec in chosen:
        where = f"prefect.yaml deployment {spec.get('name')!r}"
        entry = str(spec.get("entrypoint") or "")
        if ":" not in entry:
            raise ServeConfigError(f"{where}: entrypoint {entry!r} must be path/to/file.py:flow")
        file, function = entry.rsplit(":", 1)
        flow = load_flow_from_entrypoint(f"{PROJECT_ROOT / file}:{function}")
        out.append(flow.to_deployment(
            name=spec["name"],
            parameters=spec.get("parameters") or {},
            schedules=[schedule_of(s, where) for s in spec.get("schedules") or []],
            concurrency_limit=concurrency_of(spec.get("concurrency_limit")),
            tags=spec.get("tags") or [],
            description=spec.get("description"),
        ))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.serve", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="serve only this deployment of prefect.yaml (repeatable)")
    parser.add_argument("--limit", type=int, default=None,
                        help="at most this many runs at once (default: no limit)")
    parser.add_argument("--file", type=Path, default=PREFECT_YAML, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        deployments = runner_deployments(read_deployments(args.file), args.only)
    except (ServeConfigError, OSError, yaml.YAMLError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from prefect import serve

    serve(*deployments, limit=args.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())

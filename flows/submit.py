"""Queue a render from another system, without the CLI: returns the flow run id at once.

    from flows.submit import submit
    run_id = submit("ep01", ["resolution=416x240"])                 # a storyboard name
    run_id = submit("/srv/shared/jobs/promo.yaml")                   # a file every worker reaches
    run_id = submit({"shots": [...]}, ["storage.root=/srv/shared/reelforge"], name="promo")

A storyboard given as a dict is validated here first (StoryboardInvalid lists every problem, and
nothing is queued), then written to `<storage.root>/submitted/<name>.yaml`, where every worker
reads it, so a dict needs `storage.root=` (in the overrides or conf/config.yaml). Images of a
dict storyboard must be in a folder every worker reaches and that `images.asset_roots=` allows.

The same from a shell: `prefect deployment run render/default --param storyboard=ep01
--param overrides='["resolution=416x240"]'`, or `python -m flows.submit ep01 resolution=416x240`.
Its exit status: 0 queued (the run id is printed); 2 invalid storyboard, overrides or command line
(nothing queued); 1 queueing failed (no API, no such deployment: a short message, the traceback
with `--debug` or REELFORGE_DEBUG=1); 130 Ctrl-C; 143 SIGTERM.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence
from uuid import UUID

import yaml

from flows.config.compose import check_overrides, compose_config, compose_settings
from flows.config.settings import ConfigInvalid
from stages.storyboard.problems import StoryboardInvalid

DEFAULT_DEPLOYMENT = "render/default"


def _job_name(storyboard: Mapping[str, Any], text: str, name: str | None) -> str:
    if name:
        if not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigInvalid(f"name={name!r}: use letters, digits, '-' and '_'")
        return name
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    title = str(storyboard.get("title") or "job").lower()
    slug = "".join(c if c.isalnum() else "-" for c in title).strip("-")[:32] or "job"
    return f"{slug}-{digest}"


def _validate(text: str, name: str, overrides: list[str]) -> None:
    """Validate a dict storyboard locally, exactly as a worker will (raises StoryboardInvalid)."""
    from flows.pipeline.prepare import prepare

    with tempfile.TemporaryDirectory(prefix="reelforge-submit-") as folder:
        path = Path(folder) / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        prepare(compose_settings(str(path), overrides))


def _store_submitted(text: str, name: str, overrides: list[str]) -> str:
    """Write the storyboard under <storage.root>/submitted/; returns its path or URL."""
    from flows.config.storage import filesystem, is_remote

    root = (compose_config(overrides).get("storage") or {}).get("root")
    if not root:
        raise ConfigInvalid("a storyboard given as a dict needs storage.root= (a folder or URL "
                            "every worker reaches), e.g. overrides=['storage.root=/srv/shared/rf']")
    if is_remote(root):
        url = f"{root.rstrip('/')}/submitted/{name}.yaml"
        filesystem(url).pipe_file(url, text.encode("utf-8"))
        return url
    from stages.media.atomic import atomic_write_text

    path = Path(root.removeprefix("file://")).expanduser().resolve() / "submitted" / f"{name}.yaml"
    atomic_write_text(path, text)
    return str(path)


def submit(
    storyboard: str | Path | Mapping[str, Any],
    overrides: Sequence[str] = (),
    *,
    deployment: str = DEFAULT_DEPLOYMENT,
    name: str | None = None,
    idempotency_key: str | None = None,
    tags: Sequence[str] = (),
) -> UUID:
    """Queue one render as a run of `deployment` (FLOW/DEPLOYMENT); returns its flow run id.

    `storyboard`: a name (storyboards/NAME.yaml on the workers), a path or URL every worker
    reaches, or the storyboard itself as a dict. `overrides`: Hydra overrides, as on the command
    line. `idempotency_key`: submitting twice with the same key queues one run (the first id is
    returned again).
    """
    from prefect.deployments import run_deployment

    overrides = check_overrides(list(overrides))
    if isinstance(storyboard, Mapping):
        text = yaml.safe_dump(dict(storyboard), sort_keys=False, allow_unicode=True)
        job = _job_name(storyboard, text, name)
        _validate(text, job, overrides)
        target = _store_submitted(text, job, overrides)
    elif isinstance(storyboard, Path) or (isinstance(storyboard, str) and (
            storyboard.endswith((".yaml", ".yml")) and "://" not in storyboard)):
        path = Path(storyboard).expanduser().resolve()
        if not path.is_file():
            raise ConfigInvalid(f"storyboard={storyboard}: no such file ({path})")
        target = str(path)
    elif isinstance(storyboard, str) and storyboard:
        target = storyboard
    else:
        raise ConfigInvalid(f"storyboard={storyboard!r}: give a name, a path or a dict")
    run = run_deployment(deployment, parameters={"storyboard": target, "overrides": overrides},
                         timeout=0, as_subflow=False, idempotency_key=idempotency_key,
                         tags=list(tags) or None)
    return run.id


def main(argv: list[str] | None = None) -> int:
    from flows.runtime.hydra_cli import (DEBUG_ENV, DEBUG_FLAG, EXIT_INVALID, Terminated, is_termination,
                                         report_failure, stop_on_sigterm, stopped_message)

    args = list(sys.argv[1:] if argv is None else argv)
    if DEBUG_FLAG in args:
        args = [a for a in args if a != DEBUG_FLAG]
        os.environ[DEBUG_ENV] = "1"
    if not args or args[0] in ("-h", "--help"):
        print("usage: python -m flows.submit STORYBOARD [key=value ...] "
              "[--deployment render/default]\nQueues a render run and prints its flow run id.")
        return 0 if args else 2
    deployment = DEFAULT_DEPLOYMENT
    if "--deployment" in args:
        i = args.index("--deployment")
        deployment = args[i + 1] if i + 1 < len(args) else ""
        args = args[:i] + args[i + 2:]
        if "/" not in deployment:
            print(f"error: --deployment {deployment!r}: give FLOW/DEPLOYMENT, e.g. "
                  f"{DEFAULT_DEPLOYMENT}", file=sys.stderr)
            return EXIT_INVALID
    if not args:
        print("error: name the storyboard to queue: python -m flows.submit STORYBOARD "
              "[key=value ...]", file=sys.stderr)
        return EXIT_INVALID
    try:
        with stop_on_sigterm():
            run_id = submit(args[0], args[1:], deployment=deployment)
    except (ConfigInvalid, StoryboardInvalid) as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("Nothing was queued.", file=sys.stderr)
        return EXIT_INVALID
    except (KeyboardInterrupt, Terminated) as exc:
        signal_name = "SIGTERM" if is_termination(exc) else "Ctrl-C"
        print(f"Stopped by {signal_name} before the run id came back: check `prefect flow-run "
              "ls` before submitting again (or submit with an idempotency key).", file=sys.stderr)
        return stopped_message(exc, "queueing")[1]
    except Exception as exc:  # noqa: BLE001 - a failure to queue, never "bad input"
        return report_failure(exc, f"queueing {args[0]} on {deployment}")
    print(run_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Cached-rerun benchmark: the wall time of `python -m flows.render` when every segment is cached,
against a trivial Prefect flow's in the same run, with and without the shared local API.

    python tests/perf/bench_cached_rerun.py [--storyboard ep01] [--repeat 3] [OVERRIDE ...]

In a temp folder with its own PREFECT_HOME: one cold render (fills the cache and, with sharing
on, starts the machine's shared Prefect API, flows/runtime/local_api.py), then `--repeat` cached reruns
and `--repeat` runs of a one-line flow (`@flow def f(): return 1`), each as a fresh process, both
with the shared API (the default) and with REELFORGE_SHARED_API=0 (Prefect's temporary server in
every process). Prints the median and best wall time of each; asserts nothing. The shared server
it started is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

TRIVIAL = """
import sys
sys.path.insert(0, {root!r})
from flows.runtime.local_api import attach
attach()
from prefect import flow
@flow(name="trivial")
def trivial():
    return 1
assert trivial() == 1
"""


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=600)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {' '.join(command)}\n{result.stdout}\n"
                 f"{result.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storyboard", default="ep02")
    parser.add_argument("--repeat", type=int, default=3)
    args, overrides = parser.parse_known_args()
    work = Path(tempfile.mkdtemp(prefix="reelforge-bench-rerun-"))
    home = work / "prefect-home"
    env = dict(os.environ, PYTHONPATH=str(ROOT), PREFECT_HOME=str(home),
               PREFECT_SERVER_ANALYTICS_ENABLED="false", REELFORGE_SHARED_API="1")
    env.pop("PREFECT_API_URL", None)
    render = [sys.executable, "-m", "flows.render", f"storyboard={args.storyboard}",
              f"storyboards_dir={ROOT / 'storyboards'}", f"output_dir={work / 'renders'}",
              *overrides]
    trivial = [sys.executable, "-c", TRIVIAL.format(root=str(ROOT))]
    try:
        cold = timed(render, work, env)
        print(f"cold render of {args.storyboard} (starts the shared API): {cold:.2f}s")
        rows = []
        for shared in ("1", "0"):
            run_env = dict(env, REELFORGE_SHARED_API=shared)
            reruns = [timed(render, work, run_env) for _ in range(args.repeat)]
            flows = [timed(trivial, work, run_env) for _ in range(args.repeat)]
            label = "shared API" if shared == "1" else "temporary API per process"
            rows.append((label, reruns, flows))
        print(f"{'':28} {'cached rerun':>22} {'trivial flow':>22} {'overhead':>9}")
        for label, reruns, flows in rows:
            rerun, flow = statistics.median(reruns), statistics.median(flows)
            print(f"{label:28} {rerun:9.2f}s (best {min(reruns):5.2f}) "
                  f"{flow:9.2f}s (best {min(flows):5.2f}) {rerun - flow:8.2f}s")
        print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    finally:
        state = home / "reelforge-api.json"
        if state.exists():
            try:
                os.killpg(json.loads(state.read_text())["pid"], signal.SIGTERM)
            except (ProcessLookupError, ValueError, KeyError):
                pass
        time.sleep(1)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

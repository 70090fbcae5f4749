"""Series benchmark: the demo series (ep01 + ep02, preview engine) on one GPU worker vs two, and
the per-segment orchestration overhead taken from Prefect's own task-run timings.

    python tests/perf/bench_series.py [--resolution 416x240] [--post interpolate2x]

Starts, in subprocesses and a temp dir: a local Prefect server (SQLite), the `reelforge` pool,
`prefect deploy --all` of prefect.yaml, the series worker, and 1 then 2 gpu workers
(CUDA_VISIBLE_DEVICES=0/1; on a machine without GPUs they still split the work and the
per-"GPU" concurrency limits still apply). Each configuration renders the series from an empty
cache; a last run repeats it fully cached. Prints figures; asserts nothing; stops everything.

Figures:
- wall: the series flow run's start to end, as Prefect recorded it (and the client's view).
- per segment: Prefect's task-run time (Running -> Completed), the part of it the segment held
  the GPU (segments of an episode queue for their GPU's concurrency limit), and the work inside
  it (manifest `seconds`: cache check, generation, encode). GPU time minus work is the
  orchestration overhead of a segment (task engine, state updates, segment lock, GPU limit).
  The fully cached run shows the overhead alone: there the work is one cache lookup.
- episode runs: delay from a render run being scheduled to it running on a worker (the worker's
  poll plus starting the flow-run process), and its running time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.helpers.deploy_support import LocalPrefect  # noqa: E402

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def client_for(url: str):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    class _Ctx:
        def __enter__(self):
            self.settings = temporary_settings(updates={PREFECT_API_URL: url})
            self.settings.__enter__()
            self.client = get_client(sync_client=True)
            return self.client.__enter__()

        def __exit__(self, *exc):
            self.client.__exit__(*exc)
            self.settings.__exit__(*exc)

    return _Ctx()


def run_series(stack: LocalPrefect, overrides: list[str]) -> dict:
    with client_for(stack.url) as client:
        deployment = client.read_deployment_by_name("series/demo")
        started = time.perf_counter()
        run = client.create_flow_run_from_deployment(deployment.id, parameters={
            "series": "demo", "overrides": overrides, "render_deployment": "render/default"})
        while True:
            run = client.read_flow_run(run.id)
            if run.state and run.state.type.value in TERMINAL:
                break
            time.sleep(0.5)
        client_wall = time.perf_counter() - started
        if not run.state.is_completed():
            raise RuntimeError(f"series run ended {run.state_name}: {run.state.message}\n"
                               f"{stack.log('series')}\n{stack.log('gpu0')}")
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

        children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id])))
        episodes = []
        for child in children:
            from prefect.client.schemas.filters import FlowRunFilterId

            tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[child.id])))
            episodes.append({"run": child, "tasks": tasks})
    return {"run": run, "client_wall": client_wall, "episodes": episodes}


def segment_rows(result: dict, shared: Path) -> list[tuple[float, float, float]]:
    """Per segment: (Prefect task-run seconds, seconds it held the GPU, work seconds from the
    manifest). Segments of one episode run on one GPU one at a time (its concurrency limit), so
    a task that started while the previous one still ran only got the GPU when that one ended:
    it held the GPU from max(its start, the previous end) to its end. Holding minus work is the
    segment's orchestration overhead (task engine and state updates, lock, GPU limit)."""
    rows = []
    for episode in result["episodes"]:
        name = episode["run"].parameters["storyboard"]
        manifest = json.loads((shared / "renders" / name / "manifest.json").read_text())
        work = {f"segment-{s['id']}-{g['index']}": g["seconds"]
                for s in manifest["shots"] for g in s["segments"]}
        cached = {f"segment-{s['id']}-{g['index']}" for s in manifest["shots"]
                  for g in s["segments"] if g["cached"]}
        tasks = sorted((t for t in episode["tasks"] if t.name in work and t.start_time
                        and t.end_time), key=lambda t: t.end_time)
        previous_end = None
        for task in tasks:
            if task.name in cached:  # a cache hit takes no GPU
                duration = (task.end_time - task.start_time).total_seconds()
                rows.append((duration, duration, work[task.name]))
                continue
            got_gpu = max(task.start_time, previous_end) if previous_end else task.start_time
            rows.append(((task.end_time - task.start_time).total_seconds(),
                         (task.end_time - got_gpu).total_seconds(), work[task.name]))
            previous_end = task.end_time
    return rows


def describe(label: str, result: dict, shared: Path) -> dict:
    run = result["run"]
    wall = (run.end_time - run.start_time).total_seconds()
    rows = segment_rows(result, shared)
    overhead = [held - w for _, held, w in rows]
    pickup = [(e["run"].start_time - e["run"].expected_start_time).total_seconds()
              for e in result["episodes"]]
    running = [(e["run"].end_time - e["run"].start_time).total_seconds()
               for e in result["episodes"]]
    print(f"{label:<26} series wall {wall:6.1f}s (client {result['client_wall']:5.1f}s); "
          f"{len(rows)} segments: task {statistics.mean(t for t, _, _ in rows):.3f}s, on GPU "
          f"{statistics.mean(h for _, h, _ in rows):.3f}s, work "
          f"{statistics.mean(w for _, _, w in rows):.3f}s, overhead mean "
          f"{statistics.mean(overhead):.3f}s median {statistics.median(overhead):.3f}s; "
          f"episode runs: scheduled->running {statistics.mean(pickup):.1f}s, running "
          f"{statistics.mean(running):.1f}s")
    for e in sorted(result["episodes"], key=lambda e: e["run"].expected_start_time):
        r = e["run"]
        print(f"    {r.name:<14} scheduled->running "
              f"{(r.start_time - r.expected_start_time).total_seconds():5.1f}s, running "
              f"{(r.end_time - r.start_time).total_seconds():5.1f}s")
    return {"wall": wall, "overhead": overhead}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--resolution", default=None, help="e.g. 416x240 (default: storyboards')")
    parser.add_argument("--post", default=None, help="post preset (default: the series')")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-series-") as tmp:
        root = Path(tmp)
        stack = LocalPrefect(root, server_env={
            "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "1"})
        env = {"PREFECT_WORKER_QUERY_SECONDS": "1", "REELFORGE_SERIES_POLL_S": "0.5",
               "PYTHONPATH": str(ROOT)}
        extra = [f"resolution={args.resolution}"] if args.resolution else []
        extra += [f"post={args.post}"] if args.post else []
        try:
            stack.start_server()
            with client_for(stack.url) as client:
                from prefect.client.schemas.actions import WorkPoolCreate

                client.create_work_pool(WorkPoolCreate(name="reelforge", type="process"))
            done = stack.run("deploy", stack.prefect("--no-prompt", "deploy", "--all"))
            if done.returncode:
                raise RuntimeError(done.stdout + done.stderr)
            worker = ["worker", "start", "--pool", "reelforge"]
            stack.spawn("series", stack.prefect(*worker, "--work-queue", "series"),
                        CUDA_VISIBLE_DEVICES="", **env)

            def gpu_worker(n: int) -> None:
                stack.spawn(f"gpu{n}", stack.prefect(*worker, "--work-queue", "gpu", "--limit",
                                                     "1", "--name", f"gpu{n}"),
                            CUDA_VISIBLE_DEVICES=str(n), **env)

            print(f"demo series (ep01 + ep02), preview engine"
                  f"{', ' + ' '.join(extra) if extra else ''}; {stack.url}")
            figures = {}
            gpu_worker(0)
            shared = root / "one"
            figures[1] = describe("1 gpu worker, cold cache",
                                  run_series(stack, [f"storage.root={shared}", *extra]), shared)
            gpu_worker(1)
            shared = root / "two"
            figures[2] = describe("2 gpu workers, cold cache",
                                  run_series(stack, [f"storage.root={shared}", *extra]), shared)
            cached = describe("2 gpu workers, all cached",
                              run_series(stack, [f"storage.root={shared}", *extra]), shared)
            print(f"speed-up 2 workers vs 1: {figures[1]['wall'] / figures[2]['wall']:.2f}x; "
                  f"orchestration overhead per cached segment: median "
                  f"{statistics.median(cached['overhead']) * 1000:.0f} ms")
        finally:
            stack.stop()


if __name__ == "__main__":
    main()

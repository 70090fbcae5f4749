"""Deployments on a real local Prefect server with a work pool and process workers.

The module starts, in subprocesses: a Prefect server on 127.0.0.1 (SQLite in a temp dir, a free
port), the `reelforge` process work pool, `prefect deploy --all` of the project's prefect.yaml,
two GPU workers on the `gpu` queue (CUDA_VISIBLE_DEVICES=0 and 1, one run at a time each) and the
small worker of the `series` queue. Engine calls are counted by a logging preview engine that
every worker process registers at start (tests/helpers/series_engine.py). The test process
itself only talks to the server through a client bound to its URL (temporary settings), so the session's
Prefect test harness is untouched. Everything started is stopped in a finally.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time

import pytest

from stages.media.video_io import video_info
from tests.helpers.deploy_support import ROOT, LocalPrefect
from tests.helpers.series_engine import LOG_ENV, NAME, SLEEP_ENV, install_sitecustomize, read_calls

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

# Two tiny episodes sharing their first shot: the same content key in both, so the two workers
# race for it, and the lock must let only one of them render it.
EPISODE = """
fps: 8
resolution: 64x64
seed: 3
shots:
  - id: intro
    prompt: "the shared opening"
    frames: 5
  - id: {shot}
    prompt: "{prompt}"
    frames: 5
    camera: {{pan_x: 0.1}}
"""

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@contextlib.contextmanager
def client_for(url: str):
    """A sync Prefect client on the test server, without touching the session's settings."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url}):
        with get_client(sync_client=True) as client:
            yield client


def wait_for_runs(client, run_ids, stack: LocalPrefect, timeout: float = 240) -> list:
    deadline = time.monotonic() + timeout
    while True:
        runs = [client.read_flow_run(r) for r in run_ids]
        if all(r.state and r.state.type.value in TERMINAL for r in runs):
            return runs
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {n}\n{stack.log(n)}" for n in ("gpu0", "gpu1", "series"))
            raise TimeoutError(f"runs not finished: {[(r.name, r.state_name) for r in runs]}\n"
                               f"{logs}")
        time.sleep(0.5)


def logs_and_artifacts(client, run_id, expect: str | None = None,
                       timeout: float = 60) -> tuple[list[str], set[str]]:
    """What the run's Logs and Artifacts tabs show: its log messages and artifact keys. A
    worker's flow-run process sends its last batch of logs as it exits, after the run is already
    final; so wait (up to `timeout`) for a message containing `expect`."""
    from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterFlowRunId,
                                                LogFilter, LogFilterFlowRunId)

    deadline = time.monotonic() + timeout
    while True:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(
            any_=[run_id])), limit=200)
        messages = [entry.message for entry in logs]
        if expect is None or any(expect in m for m in messages) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
        flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
    return messages, {a.key for a in artifacts if a.key}


def assert_render_run_labelled(client, run, storyboard: str, series: str | None = None) -> None:
    """A worker's render run as the UI shows it: named and tagged like a command-line render,
    the console lines in its logs, the report and pictures artifacts (issue 16)."""
    expected = f"{series}/{storyboard}" if series else storyboard
    assert run.name == expected, (run.name, expected)
    tags = {"reelforge", f"storyboard:{storyboard}", f"engine:{NAME}"}
    tags |= {f"series:{series}"} if series else set()
    assert tags <= set(run.tags), run.tags
    if not series:
        assert not any(t.startswith("series:") for t in run.tags), run.tags
    messages, keys = logs_and_artifacts(client, run.id, expect="episode written")
    assert any(m.startswith(f"Rendering {storyboard}:") for m in messages), messages[:5]
    assert any("episode written" in m for m in messages), messages[-5:]
    assert {f"render-{storyboard}", f"render-{storyboard}-report",
            f"render-{storyboard}-pictures"} <= keys, keys


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("prefect-stack")
    sb = root / "storyboards"
    sb.mkdir()
    (sb / "sa.yaml").write_text(EPISODE.format(shot="a1", prompt="episode a's own shot"))
    (sb / "sb.yaml").write_text(EPISODE.format(shot="b1", prompt="episode b's own shot"))
    site = install_sitecustomize(root / "site")
    log = root / "engine_calls.jsonl"
    stack = LocalPrefect(root, server_env={
        # Quick retries of a run waiting for the series' concurrency slot, and of GPU slots.
        "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "1",
        "PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS": "1",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
        "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
    })
    # Each fake generation takes half a second, so one episode still renders when the other GPU
    # worker polls (every second): with 0.2 s a busy machine once let one worker take both.
    worker_env = {"PYTHONPATH": f"{site}:{ROOT}", LOG_ENV: str(log), SLEEP_ENV: "0.5",
                  "PREFECT_WORKER_QUERY_SECONDS": "1", "REELFORGE_SERIES_POLL_S": "0.5"}
    try:
        stack.start_server()
        with client_for(stack.url) as client:
            from prefect.client.schemas.actions import WorkPoolCreate

            client.create_work_pool(WorkPoolCreate(name="reelforge", type="process"))
        deployed = stack.run("deploy", stack.prefect("--no-prompt", "deploy", "--all"))
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        worker = ["worker", "start", "--pool", "reelforge"]
        for gpu in ("0", "1"):
            stack.spawn(f"gpu{gpu}", stack.prefect(*worker, "--work-queue", "gpu", "--limit", "1",
                                                   "--name", f"gpu{gpu}"),
                        CUDA_VISIBLE_DEVICES=gpu, **worker_env)
        stack.spawn("series", stack.prefect(*worker, "--work-queue", "series", "--name",
                                            "series"), CUDA_VISIBLE_DEVICES="", **worker_env)
        stack.paths = {"root": root, "storyboards": sb, "shared": root / "shared",
                       "published": root / "published", "log": log, "site": site}
        stack.worker_env = worker_env
        yield stack
    finally:
        stack.stop()


def overrides(stack) -> list[str]:
    p = stack.paths
    return [f"storyboards_dir={p['storyboards']}", f"storage.root={p['shared']}",
            f"engine.name={NAME}", "post=none", "series.episodes=[sa,sb]",
            f"series.publish.dir={p['published']}"]


def test_series_deployment_spreads_over_gpu_workers_without_rendering_twice(stack):
    with client_for(stack.url) as client:
        deployment = client.read_deployment_by_name("series/demo")
        parameters = {"series": "demo", "overrides": overrides(stack),
                      "render_deployment": "render/default"}
        # Two runs at once: the deployment's concurrency limit (1) makes the second wait; it then
        # finds every episode in the cache.
        first = client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
        second = client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
        runs = wait_for_runs(client, [first.id, second.id], stack)
        for run in runs:
            assert run.state.is_completed(), (run.name, run.state.message, stack.log("series"))
        a, b = sorted(runs, key=lambda r: r.start_time)
        assert b.start_time >= a.end_time  # never overlapped
        states = {s.name for r in runs for s in client.read_flow_run_states(r.id)}
        assert "AwaitingConcurrencySlot" in states

        renders = [r for r in client.read_flow_runs() if r.deployment_id and
                   r.parent_task_run_id and r.name.startswith("demo/")]
        assert len(renders) == 4 and all(r.state.is_completed() for r in renders)
        # Names, tags, logs and artifacts, as the UI shows them: the series runs ...
        for run in runs:
            assert run.name == "series demo", run.name
            assert {"reelforge", "series:demo"} <= set(run.tags), run.tags
            messages, keys = logs_and_artifacts(client, run.id, expect=" failed")
            assert any(m.startswith("Series demo: 2 episodes") for m in messages), messages
            assert "series-demo" in keys, keys
        # ... and the episode runs the GPU workers rendered.
        assert sorted(r.name for r in renders) == ["demo/sa", "demo/sa", "demo/sb", "demo/sb"]
        for run in renders:
            assert_render_run_labelled(client, run, run.name.split("/")[1], series="demo")
        limits = {limit.name for limit in client.read_global_concurrency_limits()}
        artifact = client.read_artifacts()  # newest versions first per key
    calls = read_calls(stack.paths["log"])
    labels = [(c["shot"], c["prompt"]) for c in calls]
    # Three distinct segments, each rendered exactly once, across both runs of the series.
    assert sorted(labels) == sorted({("intro", "the shared opening"),
                                     ("a1", "episode a's own shot"),
                                     ("b1", "episode b's own shot")}), labels
    # Both GPU workers took an episode; on each GPU, generations never overlapped in time.
    assert {c["gpu"] for c in calls} == {"0", "1"}
    for gpu in ("0", "1"):
        spans = sorted((c["start"], c["end"]) for c in calls if c["gpu"] == gpu)
        assert all(end <= nxt for (_, end), (nxt, _) in zip(spans, spans[1:])), spans
    assert any(name.startswith("gpu-") and name.endswith("-0") for name in limits), limits
    assert any(name.startswith("gpu-") and name.endswith("-1") for name in limits), limits

    for name in ("sa", "sb"):
        folder = stack.paths["shared"] / "renders" / name
        manifest = json.loads((folder / "manifest.json").read_text())
        assert video_info(folder / f"{name}.mp4").frames == manifest["frames"]
        # The second series run came entirely from the cache.
        assert manifest["segments_rendered"] == 0 and manifest["segments_cached"] == 2
        assert (stack.paths["published"] / f"{name}.mp4").is_file()
    markdown = [x for x in artifact if x.key == "series-demo"]
    texts = sorted(x.data for x in markdown)
    assert any("0 rendered, 2 cached, 0 failed" in t and "already published" in t for t in texts)
    assert any("2 rendered, 0 cached, 0 failed" in t for t in texts)


def test_nightly_schedule_carries_cron_timezone_parameters_and_limit(stack):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy

    with client_for(stack.url) as client:
        deployment = client.read_deployment_by_name("series/demo")
        assert deployment.global_concurrency_limit.limit == 1
        assert deployment.concurrency_options.collision_strategy == \
            ConcurrencyLimitStrategy.ENQUEUE
        (schedule,) = deployment.schedules
        assert schedule.schedule.cron == "0 2 * * *"
        assert schedule.schedule.timezone == "Europe/Berlin"
        assert schedule.active and schedule.parameters["series"] == "demo"
        assert deployment.work_queue_name == "series"
        # The server's scheduler has queued the next nights at 02:00 Berlin time.
        deadline = time.monotonic() + 30
        while True:
            scheduled = [r for r in client.read_flow_runs(deployment_filter=DeploymentFilter(
                id=DeploymentFilterId(any_=[deployment.id]))) if r.state_name == "Scheduled"
                and r.auto_scheduled]
            if scheduled or time.monotonic() > deadline:
                break
            time.sleep(1)
    assert scheduled, "the scheduler created no nightly runs"
    from zoneinfo import ZoneInfo

    for run in scheduled:
        local = run.expected_start_time.astimezone(ZoneInfo("Europe/Berlin"))
        assert (local.hour, local.minute) == (2, 0)
        assert run.parameters["render_deployment"] == "render/default"


def test_render_deployment_with_overrides_renders_what_the_cli_would(stack):
    extra = [f"storyboards_dir={stack.paths['storyboards']}",
             f"storage.root={stack.paths['shared']}", f"engine.name={NAME}", "post=none",
             "fps=12", "resolution=96x64", "output.crf=30"]
    from flows.submit import submit

    before = len(read_calls(stack.paths["log"]))
    with client_for(stack.url) as client:
        run_id = submit("sa", extra)  # queues a run of render/default, returns its id at once
        assert client.read_flow_run(run_id).parameters == {"storyboard": "sa", "overrides": extra}
        (run,) = wait_for_runs(client, [run_id], stack)
        assert run.state.is_completed(), (run.state.message, stack.log("gpu0"), stack.log("gpu1"))
        assert_render_run_labelled(client, run, "sa")  # named `sa`, tagged, logs, artifacts
    calls = read_calls(stack.paths["log"])[before:]
    assert {(c["shot"], c["width"], c["fps"]) for c in calls} == {("intro", 96, 12), ("a1", 96, 12)}
    manifest = json.loads((stack.paths["shared"] / "renders" / "sa" / "manifest.json").read_text())
    assert manifest["resolution"] == "96x64" and manifest["generation_fps"] == 12
    assert manifest["output"]["crf"] == 30

    # The CLI with the same overrides plans exactly these segments: every one a cache hit.
    cli = subprocess.run([sys.executable, "-m", "flows.render", "storyboard=sa", "dry_run=true",
                          *extra], cwd=stack.paths["root"], capture_output=True, text=True,
                         timeout=120, env=stack.env(**stack.worker_env))
    assert cli.returncode == 0, cli.stderr
    assert "2 segments (2 cached, 0 to render)" in cli.stdout, cli.stdout
    assert f"output in {stack.paths['shared'] / 'renders' / 'sa'}" in cli.stdout

"""What the Prefect UI shows of a command-line render (issue 16): the flow run named after the
storyboard and tagged (`reelforge`, `storyboard:`, `engine:`), the report and pictures artifacts
(contact sheet and thumbnails inlined), the run's URL in manifest.json, the `notify:` message
(an Apprise json:// target on a loopback HTTP server), and Ctrl-C recorded as Cancelled.

The renders run as subprocesses against the session's Prefect test API, as in test_exits.py.
"""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import pytest

from tests.integration.test_exits import FAULT_POINTS, _api_url, _env, _report, _run, _work


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        self.received.append(json.loads(self.rfile.read(length) or b"{}"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture
def hook():
    """A loopback HTTP server that keeps the JSON bodies POSTed to it; yields its json:// URL
    and the list."""
    _Hook.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"json://127.0.0.1:{server.server_address[1]}/hook", _Hook.received
    finally:
        server.shutdown()
        server.server_close()


def _our_run(work: Path):
    from prefect import get_client
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=50)
    ours = [r for r in runs if (r.parameters.get("settings") or {}).get("cwd") == str(work)]
    assert ours, [r.name for r in runs]
    return ours[0]


@pytest.mark.usefixtures("prefect_harness")
def test_a_render_run_is_named_tagged_pictured_linked_and_notified(tmp_path: Path, hook):
    from prefect import get_client
    from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterFlowRunId,
                                                LogFilter, LogFilterFlowRunId)

    url, received = hook
    work = _work(tmp_path)
    result = _run([__import__("sys").executable, "-m", "flows.render", "storyboard=tiny",
                   "workers=1", f"notify=['{url}']"], work, _env(PREFECT_API_URL=_api_url()))
    assert result.returncode == 0, _report(result)

    run = _our_run(work)
    assert run.name == "tiny", run.name
    assert {"reelforge", "storyboard:tiny", "engine:preview"} <= set(run.tags), run.tags
    assert run.state is not None and run.state.is_completed()

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(
            any_=[run.id])))
    by_key = {a.key: a for a in artifacts if a.key}
    assert {"render-tiny-report", "render-tiny-pictures"} <= set(by_key), sorted(by_key)
    pictures = by_key["render-tiny-pictures"].data
    assert pictures.count("](data:image/jpeg;base64,") >= 3, pictures[:300]  # sheet + 2 shots
    assert "| one | ![" in pictures and "| two | ![" in pictures
    assert len(pictures) < 700_000
    # The console lines as run logs (flows/pipeline/progress.py): the Logs tab is not empty.
    assert all(entry.flow_run_id == run.id for entry in logs)
    messages = [entry.message for entry in logs]
    assert any(m.startswith("Rendering tiny: 2 shots") for m in messages), messages[:5]
    assert any("episode written" in m for m in messages), messages[-5:]
    assert by_key["render-tiny"].type == "progress", by_key["render-tiny"].type

    manifest = json.loads((work / "renders" / "tiny" / "manifest.json").read_text())
    assert manifest["run_url"].endswith(f"/runs/flow-run/{run.id}"), manifest.get("run_url")
    assert manifest["run_url"].startswith("http://127.0.0.1:")

    assert len(received) == 1, received
    payload = received[0]
    assert payload["title"] == "reelforge: episode tiny completed"
    body = payload["message"]
    assert "episode: tiny" in body and "status: completed" in body, body
    assert "duration: " in body and f"run: {manifest['run_url']}" in body, body
    assert [a["filename"] for a in payload.get("attachments") or []] == [
        Path(manifest["contact_sheet"]).name], payload.get("attachments")


@pytest.mark.usefixtures("prefect_harness")
def test_ctrl_c_ends_the_run_cancelled_and_notifies(tmp_path: Path, hook):
    import sys

    url, received = hook
    work = _work(tmp_path)
    env = _env(PREFECT_API_URL=_api_url(), REELFORGE_FAULT="sigint@generate:two:0:3")
    result = _run([sys.executable, str(FAULT_POINTS), "storyboard=tiny", "workers=1",
                   "retries=0", f"notify=['{url}']"], work, env)
    report = _report(result)
    assert result.returncode == 130, report
    assert "Interrupted" in result.stderr and "Traceback" not in result.stderr, report

    run = _our_run(work)
    assert run.state is not None and run.state.type.value == "CANCELLED", run.state
    assert run.name == "tiny" and "storyboard:tiny" in run.tags, (run.name, run.tags)
    assert "Ctrl-C" in (run.state.message or ""), run.state.message
    assert len(received) == 1, received
    assert "status: cancelled" in received[0]["message"], received[0]

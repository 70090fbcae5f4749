"""What the Prefect UI shows of a series run (issue 16): the series run named `series demo` and
tagged, its own console lines (the plan, the summary) in its Logs tab, not only its episodes',
and the `series-demo` artifact with each contact sheet under the table (inside a table cell the
sheets were pushed past the UI's artifact panel and clipped)."""

from __future__ import annotations

import pytest

from tests.flows.test_series import storyboards

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_series_run_is_named_tagged_logged_and_shows_its_contact_sheets(tmp_path, capsys):
    from prefect import get_client
    from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterFlowRunId,
                                                LogFilter, LogFilterFlowRunId)
    from prefect.logging.handlers import APILogHandler

    from flows.deploy.series_flow import series_flow

    sb = storyboards(tmp_path / "sb")
    overrides = [f"storyboards_dir={sb}", f"output_dir={tmp_path / 'renders'}", "post=none",
                 "series.episodes=[sa]"]
    summary = series_flow(series="demo", overrides=overrides)
    assert summary["failed"] == 0
    assert "Series demo: 1 episodes" in capsys.readouterr().out  # the console keeps its lines
    APILogHandler().flush()  # logs go in batches; send what is queued

    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=20)
        series = next(r for r in runs if r.name == "series demo")
        episode = next(r for r in runs if r.name == "demo/sa")
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(
            any_=[series.id])))
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[series.id])))
        episode_logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(
            any_=[episode.id])))
    assert {"reelforge", "series:demo"} <= set(series.tags), series.tags
    assert {"reelforge", "series:demo", "storyboard:sa", "engine:preview"} <= set(episode.tags)

    messages = [entry.message for entry in logs]
    assert any(m.startswith("Series demo: 1 episodes (sa), rendering here") for m in messages)
    assert any("1 rendered, 0 cached, 0 failed" in m for m in messages), messages
    # The episode's own lines stay in the episode run's logs.
    assert not any(m.startswith("Rendering sa:") for m in messages), messages
    assert any(e.message.startswith("Rendering sa:") for e in episode_logs)

    (artifact,) = [a for a in artifacts if a.key == "series-demo"]
    table, _, sheets = artifact.data.partition("## Contact sheets")
    assert "| sa | rendered | 2 / 0 |" in table and "data:image" not in table, table
    assert "### sa" in sheets and "](data:image/jpeg;base64," in sheets

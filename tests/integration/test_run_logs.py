"""The live preview file of a render on the preview engine, and the console's progress lines
also reach the Prefect run's logs (the Logs tab), at INFO,
while the console output stays as it was (no duplicated lines)."""

from __future__ import annotations

import asyncio

import pytest

from flows.render import EXIT_OK, run
from tests.integration import test_report as base

settings = base.settings

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def project(tmp_path):
    return base.project.__wrapped__(tmp_path)


def test_progress_lines_are_run_logs(project, capsys):
    assert run(settings(project)) == EXIT_OK
    out = capsys.readouterr().out
    assert out.count("episode written") == 1  # once on the console: the log is not echoed
    # The preview engine's live preview: the frame it drew last, named on the progress lines.
    assert (project / "out" / "rep" / "preview.png").is_file() and "; live preview " in out

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterLevel
    from prefect.client.schemas.sorting import LogSort

    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # logs go in batches; send what is queued

    async def messages():
        async with get_client() as client:
            # Newest first: the session's harness also holds every earlier test's logs.
            logs = await client.read_logs(LogFilter(level=LogFilterLevel(ge_=20)), limit=200,
                                          sort=LogSort.TIMESTAMP_DESC)
            return [log.message for log in logs]

    found = asyncio.run(messages())
    assert any(m.startswith("Rendering rep:") for m in found)
    assert any("progress: 3/3 segments, 2/2 shots, 100%, episode written" in m for m in found)

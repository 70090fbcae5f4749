"""Shared test set-up: one thread per library, Prefect isolated in a temp dir, the Prefect harness
fixture, and the `slow` marker on integration tests. Fixtures and hooks only: helpers live in
tests/helpers/."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Before Prefect is imported anywhere: keep its database, settings and logs out of ~/.prefect.
_PREFECT_HOME = tempfile.mkdtemp(prefix="reelforge-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_LOCAL_STORAGE_PATH", str(Path(_PREFECT_HOME) / "storage"))
os.environ.setdefault("OMP_NUM_THREADS", "1")
# No machine-wide Prefect API left running by test renders (flows/runtime/local_api.py); its own tests
# opt in.
os.environ.setdefault("REELFORGE_SHARED_API", "0")

import cv2  # noqa: E402
import pytest  # noqa: E402

cv2.setNumThreads(1)


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test harness (a temporary API with SQLite) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items):
    """`slow`: every test under tests/integration/, and every test anywhere that starts Prefect
    (uses the prefect_harness fixture), so `-m "not slow"` is the quick unit run."""
    integration = Path(__file__).resolve().parent / "integration"
    for item in items:
        if "prefect_harness" in item.fixturenames or integration in Path(item.path).parents:
            item.add_marker(pytest.mark.slow)

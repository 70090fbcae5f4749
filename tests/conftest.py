"""Shared test set-up: one thread per library, Prefect isolated in a temp dir, tiny media."""

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
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

cv2.setNumThreads(1)


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test harness (a temporary API with SQLite) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def write_png(path: Path, width: int, height: int, seed: int = 0) -> Path:
    """A small textured image (so optical flow and chaining have something to track)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    img = cv2.resize(base, (width, height), interpolation=cv2.INTER_LINEAR)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path

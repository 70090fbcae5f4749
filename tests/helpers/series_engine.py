"""A preview engine that logs every generation call to a file, for tests that render in other
processes (Prefect workers and their flow runs), where an in-memory counter cannot be read.

Each call appends one JSON line: shot, segment, prompt, the worker's CUDA_VISIBLE_DEVICES, pid,
start and end times. A process registers it at startup through `sitecustomize.py` written by
`install_sitecustomize` into a folder put on PYTHONPATH.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

from engine.preview import PREVIEW_SPEC, PreviewEngine
from engine.registry import register

NAME = "series_counting"
LOG_ENV = "SERIES_ENGINE_LOG"
SLEEP_ENV = "SERIES_ENGINE_SLEEP"


class LoggingPreviewEngine(PreviewEngine):
    def generate(self, request, progress=None):
        started = time.time()
        time.sleep(float(os.environ.get(SLEEP_ENV, "0")))  # widens the window for races
        frames = super().generate(request, progress)
        record = {"shot": request.shot_id, "segment": request.segment_index,
                  "prompt": request.prompt, "frames": request.num_frames,
                  "width": request.width, "fps": request.fps,
                  "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid(),
                  "start": started, "end": time.time()}
        with open(os.environ[LOG_ENV], "a", encoding="utf-8") as fh:  # one append per call
            fh.write(json.dumps(record) + "\n")
        return frames


def register_engine() -> None:
    register(NAME, dataclasses.replace(PREVIEW_SPEC, name=NAME), LoggingPreviewEngine,
             replace=True)


def install_sitecustomize(folder: Path) -> Path:
    """A folder to put first on PYTHONPATH: every Python process started with it (and with
    SERIES_ENGINE_LOG set) registers the engine before anything else runs."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(
        "import os\n"
        f"if os.environ.get({LOG_ENV!r}):\n"
        "    from tests.helpers.series_engine import register_engine\n"
        "    register_engine()\n")
    return folder


def read_calls(log: Path) -> list[dict]:
    if not log.is_file():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]

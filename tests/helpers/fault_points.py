"""`python tests/helpers/fault_points.py [overrides]`: `python -m flows.render` (or the command
REELFORGE_FAULT_RUN names: flows.series, flows.enhance) with faults injected at chosen points, for
the crash-resume and exit tests (never imported by the project itself).

REELFORGE_FAULT names one fault, `ACTION@POINT`:
- ACTION: `kill` (SIGKILL to the whole process group: the render, ffmpeg and Prefect's server
  die at once, as in a power cut), `sigint` (Ctrl-C, then the worker waits so the handler runs
  before its next step) or `sigterm` (the same with SIGTERM, as docker stop sends).
- POINT: `generate:SHOT:INDEX:FRAME` (inside the engine, at that frame of that segment),
  `write:KIND:NTH:FRAME` (while writing the NTH clip of KIND (segment, shot, episode) of this run
  into the cache, after FRAME frames), `embed` (while the finished episode is re-copied into the
  render folder with its manifest), `frames:N` (when any video writer has written N frames).
REELFORGE_ENGINE_LOG: a file that receives one line per engine call (`SHOT_INDEX`).
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import time

from engine.preview import PreviewEngine
from flows.runtime.stop import stop_requested
from stages.media import ffmpeg, video_io

FAULT = os.environ.get("REELFORGE_FAULT", "")
LOG = os.environ.get("REELFORGE_ENGINE_LOG")
action, _, point = FAULT.partition("@")
where = point.split(":")
opened: dict[str, int] = {}


def strike() -> None:
    if action == "kill":
        os.killpg(os.getpgid(0), signal.SIGKILL)
    elif action in ("sigint", "sigterm"):
        os.kill(os.getpid(), signal.SIGINT if action == "sigint" else signal.SIGTERM)
        deadline = time.monotonic() + 10
        while not stop_requested() and time.monotonic() < deadline:
            time.sleep(0.01)  # the main thread's handler runs before this worker's next step


_generate = PreviewEngine.generate


def generate(self, request, progress=None):
    label = f"{request.shot_id}_{request.segment_index}"
    if LOG:
        with open(LOG, "a", encoding="utf-8") as log:
            log.write(label + "\n")
    if where[0] == "generate" and label == f"{where[1]}_{where[2]}":
        inner = progress

        def progress(done, total):  # noqa: F811 - wraps the render's callback
            if done == int(where[3]):
                strike()
            if inner is not None:
                inner(done, total)

    return _generate(self, request, progress)


_write = video_io.VideoWriter.write


def write(self, frame):
    if where[0] == "frames" and self.frames_written == int(where[1]):
        strike()
    if where[0] == "write" and f"/{where[1]}/" in str(self.path):
        if self.frames_written == 0:  # number the writers in the order they start
            opened[where[1]] = opened.get(where[1], 0) + 1
            self.fault_ordinal = opened[where[1]]
        if self.fault_ordinal == int(where[2]) and self.frames_written == int(where[3]):
            strike()
    return _write(self, frame)


_run_ffmpeg = ffmpeg.run_ffmpeg


def run_ffmpeg(args, path):
    if where[0] == "embed" and "ffmetadata" in args and "-map_metadata" in args:
        strike()
    return _run_ffmpeg(args, path)


PreviewEngine.generate = generate
video_io.VideoWriter.write = write
ffmpeg.run_ffmpeg = run_ffmpeg  # every module calls it through stages.media.ffmpeg

if __name__ == "__main__":
    command = os.environ.get("REELFORGE_FAULT_RUN") or "flows.render"
    sys.argv = [command] + sys.argv[1:]
    runpy.run_module(command, run_name="__main__", alter_sys=True)

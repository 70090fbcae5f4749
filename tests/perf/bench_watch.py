"""Watch-mode benchmark: from saving an edit of one shot to the updated episode video.

    python tests/perf/bench_watch.py [--storyboard ep01] [--interval 0.5] [OVERRIDE ...]

OVERRIDEs go to the render, e.g. `post=none` or `resolution=416x240` for a quicker preview loop.

Copies the storyboard (and its assets) into a temp folder, starts
`python -m flows.render storyboard=NAME watch=true` there, waits for the first (cold) render,
then saves two edits, one at a time: the prompt of the last shot (nothing chains from it), then
the prompt of the second shot (the shots chained from it render again too). For each, it prints
the time from the save to the render's "Done" line (the episode, shot videos, report and
manifest are written by then) and what was rendered again. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def reader(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put((time.perf_counter(), line.rstrip("\n")))
    lines.put((time.perf_counter(), None))


def wait_done(lines: queue.Queue, timeout: float = 900.0) -> float:
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while True:
        stamp, line = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
        if line is None:
            raise RuntimeError("the watcher exited early:\n" + "\n".join(seen[-20:]))
        seen.append(line)
        if line.startswith("Done in"):
            return stamp
        if line.startswith("error"):
            raise RuntimeError(line)


def edit_prompt(path: Path, shot_index: int, suffix: str) -> str:
    """Append to one shot's prompt in place (text edit, as an editor would save it)."""
    data = yaml.safe_load(path.read_text())
    shot = data["shots"][shot_index]
    old = shot.get("prompt") or shot["segments"][0]["prompt"]
    text = path.read_text()
    assert text.count(old) == 1, f"prompt of shot {shot['id']} is not unique in the file"
    path.write_text(text.replace(old, old + suffix))
    return shot["id"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--storyboard", default="ep01")
    parser.add_argument("--interval", type=float, default=0.5, help="watch_interval (s)")
    parser.add_argument("overrides", nargs="*", help="render overrides, e.g. post=none")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copytree(ROOT / "storyboards", work / "storyboards")
        board = work / "storyboards" / f"{args.storyboard}.yaml"
        env = dict(os.environ, PYTHONPATH=str(ROOT), PREFECT_HOME=str(work / "prefect"),
                   PREFECT_SERVER_ANALYTICS_ENABLED="false")
        command = [sys.executable, "-m", "flows.render", f"storyboard={args.storyboard}",
                   "watch=true", "watch_max_runs=3", f"watch_interval={args.interval}",
                   "progress=lines", "output_dir=renders", *args.overrides]
        started = time.perf_counter()
        proc = subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=reader, args=(proc.stdout, lines), daemon=True).start()
        first = wait_done(lines) - started
        manifest_path = work / "renders" / args.storyboard / "manifest.json"
        cold = json.loads(manifest_path.read_text())
        print(f"{args.storyboard}: {cold['frames']} frames at {cold['fps']:g} fps, "
              f"{cold['resolution']}; cold render (incl. start-up) {first:.1f}s, "
              f"{cold['segments_rendered']} segments")
        shots = len(yaml.safe_load(board.read_text())["shots"])
        for index, what in ((shots - 1, "last shot (nothing chains from it)"),
                            (1, "second shot (its chained shots follow)")):
            time.sleep(args.interval * 2)  # the watcher is polling again
            shot = edit_prompt(board, index, ", at night")
            saved = time.perf_counter()
            done = wait_done(lines)
            m = json.loads(manifest_path.read_text())
            again = [f"{s['id']}_{g['index']}" for s in m["shots"] for g in s["segments"]
                     if not g["cached"]]
            generation = sum(g["seconds"] for s in m["shots"] for g in s["segments"])
            post = sum(s["seconds"] for s in m["shots"])
            print(f"edit of {shot} ({what}): save -> updated episode {done - saved:.1f}s; "
                  f"rendered again: {', '.join(again)} ({m['segments_cached']} segments cached); "
                  f"flow {m['timings']['total_s']:.1f}s: segments {generation:.1f}s, post "
                  f"chains {post:.1f}s (task time, concurrent), encode, copies and report the "
                  "rest")
        proc.wait(timeout=120)
    print(f"overrides: {' '.join(args.overrides) or 'none'}; watch_interval={args.interval}s: "
          "a save is noticed within one interval and rendered after one more without changes")


if __name__ == "__main__":
    main()

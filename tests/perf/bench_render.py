"""Render benchmark: ep01 first run vs cached run, preview engine speed, peak memory.

    python tests/perf/bench_render.py [--storyboard ep01]

Prints figures; asserts nothing. The cached run's time is reported as a ratio of the first run's,
measured in the same invocation.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def preview_segments_per_second(width: int = 832, height: int = 480, frames: int = 81,
                                repeats: int = 5) -> float:
    import cv2

    from engine.base import CameraState, GenerationRequest
    from engine.preview import PreviewEngine

    cv2.setNumThreads(1)
    engine = PreviewEngine()
    camera = [CameraState(pan_x=0.1 * i / frames, zoom=0.2 * i / frames) for i in range(frames)]
    started = time.perf_counter()
    for seed in range(repeats):
        engine.generate(GenerationRequest(prompt="benchmark", width=width, height=height,
                                          num_frames=frames, fps=16, seed=seed, camera=camera))
    return repeats / (time.perf_counter() - started)


def timed_render(storyboard: str, out: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "flows.render", f"storyboard={storyboard}",
                    f"output_dir={out}"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    name = Path(storyboard).stem
    return seconds, json.loads((out / name / "manifest.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--storyboard", default="ep01")
    args = parser.parse_args()

    rate = preview_segments_per_second()
    print(f"preview engine, 81 frames at 832x480, 1 thread: {rate:.2f} segments/s "
          f"({81 * rate:.0f} frames/s)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "renders"
        first, m1 = timed_render(args.storyboard, out)
        second, m2 = timed_render(args.storyboard, out)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"{args.storyboard}: {m1['frames']} frames, {m1['duration_s']:.2f}s at {m1['fps']:g} fps")
    print(f"first run   {first:6.1f}s  ({m1['segments_rendered']} segments rendered)")
    print(f"cached run  {second:6.1f}s  ({m2['segments_cached']} segments cached) "
          f"= {second / first:.2f} x first run")
    print(f"peak RSS of a render process: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()

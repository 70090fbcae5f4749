"""Benchmark: peak memory of `python -m flows.enhance ... post=svi_pro` on a 10-second and a
2-minute 720p clip, to show that memory does not grow with the video's length.

Run from the repository root (the 2-minute run takes a while; it is not part of the tests):

    python tests/perf/bench_post_memory.py [--short 10] [--long 120] [--fps 16] [--post svi_pro]
        [--encoder-preset veryfast]

Generates both clips (H.264, 1280x720, synthetic moving content: a panning texture, an orbiting
disc and a hard cut every 10 s so scene_detect has work), runs the enhance CLI on each as a
subprocess and samples the resident memory of its process tree every 0.1 s with psutil. Reports
frames, seconds, throughput, the peak RSS of the Python process and of the whole tree (ffmpeg
decoder/encoder included), and the long/short ratios measured in the same run. The output
encoder runs x264 at --encoder-preset (default veryfast: at medium, encoding svi_pro's 1440p
output costs more CPU than the chain itself; memory is what this measures).
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from stages.media.video_io import VideoWriter  # noqa: E402
from tests.helpers.synthetic import texture  # noqa: E402

W, H = 1280, 720
MARGIN = 64
SCENE_SECONDS = 10


def make_clip(path: Path, seconds: float, fps: int) -> int:
    rng = np.random.default_rng(0)
    backgrounds = [texture(rng, H + 2 * MARGIN, W + 2 * MARGIN) for _ in range(3)]
    disc = 255 - texture(rng, 160, 160)
    yy, xx = np.mgrid[:160, :160]
    mask = (yy - 79.5) ** 2 + (xx - 79.5) ** 2 <= 80**2
    frames = round(seconds * fps)
    with VideoWriter(path, W, H, fps, codec="h264", crf=18, preset="veryfast") as out:
        for i in range(frames):
            t = i / fps
            bg = backgrounds[int(t // SCENE_SECONDS) % len(backgrounds)]
            ox = MARGIN + round(MARGIN * 0.9 * math.sin(2 * math.pi * t / 7))
            oy = MARGIN + round(MARGIN * 0.9 * math.sin(2 * math.pi * t / 11))
            f = bg[oy:oy + H, ox:ox + W].copy()
            cx = round(W / 2 - 80 + 400 * math.cos(2 * math.pi * t / 5))
            cy = round(H / 2 - 80 + 200 * math.sin(2 * math.pi * t / 5))
            sub = f[cy:cy + 160, cx:cx + 160]
            sub[mask] = disc[mask]
            out.write(f)
    return frames


def run_enhance(clip: Path, out: Path, post: str, preset: str) -> dict:
    cmd = [sys.executable, "-m", "flows.enhance", f"input={clip}", f"output={out}",
           f"post={post}", "audio=none", f"preset={preset}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    peak = {"python": 0, "tree": 0}
    done = threading.Event()

    def sample():
        p = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                own = p.memory_info().rss
                tree = own + sum(c.memory_info().rss for c in p.children(recursive=True))
            except psutil.Error:
                break
            peak["python"] = max(peak["python"], own)
            peak["tree"] = max(peak["tree"], tree)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"enhance failed ({proc.returncode}):\n{output}")
    return {"seconds": time.perf_counter() - started, "python_mb": peak["python"] / 2**20,
            "tree_mb": peak["tree"] / 2**20, "log": output.strip().splitlines()[-1]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--short", type=float, default=10.0, help="seconds (default 10)")
    ap.add_argument("--long", type=float, default=120.0, help="seconds (default 120)")
    ap.add_argument("--fps", type=int, default=16)
    ap.add_argument("--post", default="svi_pro")
    ap.add_argument("--encoder-preset", default="veryfast", help="x264 preset of the output")
    ap.add_argument("--keep", help="folder to keep the clips and outputs in")
    args = ap.parse_args(argv)
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-post-mem-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} cpus; enhance post={args.post} (x264 {args.encoder_preset}) on "
          f"{W}x{H} clips at {args.fps} fps in {folder}\n")
    results = {}
    for name, seconds in (("short", args.short), ("long", args.long)):
        clip = folder / f"{name}.mp4"
        t0 = time.perf_counter()
        frames = make_clip(clip, seconds, args.fps)
        print(f"{name}: generated {frames} frames ({seconds:g}s) in "
              f"{time.perf_counter() - t0:.0f}s; enhancing ...", flush=True)
        r = run_enhance(clip, folder / f"{name}_out.mp4", args.post, args.encoder_preset)
        r["frames"] = frames
        results[name] = r
        print(f"  {r['log']}\n  wall {r['seconds']:.0f}s, peak RSS python "
              f"{r['python_mb']:.0f} MiB, process tree {r['tree_mb']:.0f} MiB", flush=True)
        if not args.keep:
            clip.unlink(missing_ok=True)
            (folder / f"{name}_out.mp4").unlink(missing_ok=True)
    s, lg = results["short"], results["long"]
    print(f"\nlong/short: {lg['frames'] / s['frames']:.1f}x the frames, peak RSS python "
          f"{lg['python_mb'] / s['python_mb']:.2f}x, process tree "
          f"{lg['tree_mb'] / s['tree_mb']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

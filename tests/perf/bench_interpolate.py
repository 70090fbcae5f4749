"""Benchmark for stages.post.interpolate: throughput and accuracy of flow interpolation vs plain blend.

Run from the repository root:

    python tests/perf/bench_interpolate.py [--frames 9] [--repeats 3] [--threads N]

Synthetic moving content, rendered exactly at every quarter frame so the interpolated frames have
a ground truth: a multi-scale noise texture panned by the camera (content moves -4,-4 px per
frame) and a textured disc moving +12,+4 px per frame on top of it (16,8 px relative motion).
Reports, per resolution and method, interpolated frames per second (frames the method synthesises,
factor 2 and 4, streaming through interpolate_frames), CPU time per synthesised frame, and the PSNR
of the synthesised frames against the truth. Timings are the best of --repeats runs, since other
work on the machine only ever makes a run slower.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from stages.post.interpolate import blend_pair  # noqa: E402
from tests.helpers.post_media import interpolate_frames  # noqa: E402
from tests.helpers.synthetic import texture  # noqa: E402

RESOLUTIONS = [(480, 832), (720, 1280)]
PAN = (-4, -4)  # background content motion per frame, px (x, y); quarter steps are whole px
DISC = (12, 4)  # disc motion per frame, px


class Scene:
    """Renders the frame at any time that is a multiple of 1/4 exactly (integer offsets)."""

    def __init__(self, h: int, w: int, n_frames: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.h, self.w = h, w
        self.margin = 4 * max(abs(PAN[0]), abs(PAN[1])) * n_frames // 4 + 8
        m = self.margin
        self.bg = texture(rng, h + 2 * m, w + 2 * m)
        self.size = size = h // 4
        self.obj = 255 - texture(rng, size, size)
        yy, xx = np.mgrid[:size, :size]
        r = (size - 1) / 2
        self.mask = (yy - r) ** 2 + (xx - r) ** 2 <= r * r
        self.x0 = w // 4
        self.y0 = h // 3

    def frame(self, t: float) -> np.ndarray:
        q = round(t * 4)
        assert abs(q - t * 4) < 1e-9, "only quarter-frame times are exact"
        m = self.margin
        # Content moving by PAN means the camera window moves by -PAN.
        cx, cy = m - PAN[0] * q // 4, m - PAN[1] * q // 4
        f = self.bg[cy : cy + self.h, cx : cx + self.w].copy()
        x, y = self.x0 + DISC[0] * q // 4, self.y0 + DISC[1] * q // 4
        sub = f[y : y + self.size, x : x + self.size]
        sub[self.mask] = self.obj[self.mask]
        return f


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def blend_frames(frames, factor: int):
    """The baseline, streamed exactly like interpolate_frames but with a cross-fade."""
    prev = None
    for f in frames:
        if prev is not None:
            yield prev
            for k in range(1, factor):
                yield blend_pair(prev, f, k / factor)
        prev = f
    if prev is not None:
        yield prev


def run_method(method: str, frames: list[np.ndarray], factor: int) -> list[np.ndarray]:
    if method == "blend":
        return list(blend_frames(iter(frames), factor))
    return list(interpolate_frames(iter(frames), factor=factor, quality=method))


def measure(method: str, scene: Scene, frames: list[np.ndarray], factor: int, repeats: int):
    run_method(method, frames[:2], factor)  # warm-up: DIS object, grid cache, page faults
    best = best_cpu = float("inf")
    out: list[np.ndarray] = []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = run_method(method, frames, factor)
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    n_pairs = len(frames) - 1
    assert len(out) == n_pairs * factor + 1
    synthesised = n_pairs * (factor - 1)
    scores = []
    for i in range(n_pairs):
        for k in range(1, factor):
            truth = scene.frame(i + k / factor)
            scores.append(psnr(out[i * factor + k], truth))
    return synthesised / best, len(out) / best, 1000 * best_cpu / synthesised, float(np.mean(scores))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=9, help="input frames per clip (default 9)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs, best kept (default 3)")
    ap.add_argument("--threads", type=int, default=None, help="cv2.setNumThreads (default: cv2's)")
    ap.add_argument("--methods", default="blend,fast,medium")
    ap.add_argument("--factors", default="2,4")
    args = ap.parse_args(argv)
    if args.threads is not None:
        cv2.setNumThreads(args.threads)
    methods = args.methods.split(",")
    factors = [int(f) for f in args.factors.split(",")]

    print(
        f"cv2 {cv2.__version__}, cv2 threads {cv2.getNumThreads()}, cpus {os.cpu_count()}, "
        f"{args.frames} input frames, best of {args.repeats}"
    )
    print(f"motion per frame: background {PAN} px, disc {DISC} px\n")
    head = f"{'resolution':>10}  {'method':>7}"
    for f in factors:
        head += f"  {f'x{f} interp/s':>12}  {f'x{f} out/s':>10}  {'cpu ms':>7}  {'PSNR dB':>7}"
    print(head)
    print("-" * len(head))
    for h, w in RESOLUTIONS:
        scene = Scene(h, w, args.frames)
        frames = [scene.frame(i) for i in range(args.frames)]
        for method in methods:
            row = f"{f'{h}x{w}':>10}  {method:>7}"
            for factor in factors:
                fps, out_fps, cpu_ms, db = measure(method, scene, frames, factor, args.repeats)
                row += f"  {fps:12.1f}  {out_fps:10.1f}  {cpu_ms:7.2f}  {db:7.2f}"
            print(row, flush=True)
    print(
        "\ninterp/s: synthesised frames per second (wall clock); out/s: all output frames "
        "(inputs passed\nthrough included); cpu ms: process CPU time per synthesised frame, all "
        "threads summed (steadier\nthan wall clock on a busy machine); PSNR: mean over "
        "synthesised frames against the exact truth."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

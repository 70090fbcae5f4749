"""Benchmark of the interpolate stage's methods on ground truth: flow vs minterpolate vs blend
(and rife when REELFORGE_RIFE_WEIGHTS names a RIFE 4.x flownet.pkl). flow is the default
quality (medium), flow:fast the fast DIS preset.

Run from the repository root:

    python tests/perf/bench_post_interpolate.py [--frames 9] [--repeats 2] [--sources synthetic,preview]

Ground truth: motion rendered at 2x the frame rate, every other frame dropped, the dropped frames
reconstructed by `interpolate: {factor: 2, method: M}` through the real post chain:
- synthetic: a multi-scale noise texture panned -4,-4 px per frame with a textured disc moving
  +12,+4 px on top (tests/perf/bench_interpolate.py's scene, exact at half frames);
- preview: the preview engine rendering a shot at 32 fps (camera zoom + pan, its moving discs),
  of which the 16 fps frames are kept.
Reports per resolution (480p, 720p) and method: PSNR and SSIM of the reconstructed frames against
the truth, output frames per second of the whole stage (wall clock, best of --repeats), and in
the same run the ratios flow/minterpolate of speed and the PSNR difference.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_interpolate import Scene  # noqa: E402

from engine.base import CameraState, GenerationRequest  # noqa: E402
from engine.preview import PreviewEngine  # noqa: E402
from stages.post.chain import resolve_post_chain, run_post_chain  # noqa: E402

RESOLUTIONS = [(480, 832), (720, 1280)]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM (Wang et al. 2004) on luma, 11x11 Gaussian window, sigma 1.5."""
    x = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float64)
    y = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY).astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = lambda z: cv2.GaussianBlur(z, (11, 11), 1.5)  # noqa: E731
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s[5:-5, 5:-5].mean())


def synthetic_truth(h: int, w: int, n: int) -> list[np.ndarray]:
    scene = Scene(h, w, n)
    return [scene.frame(k / 2) for k in range(2 * n - 1)]


def preview_truth(h: int, w: int, n: int) -> list[np.ndarray]:
    """The preview engine at 32 fps: 2n - 1 frames of one shot (4k+1 frames, as it requires)."""
    frames = 2 * n - 1
    camera = [CameraState(pan_x=0.04 * i / (frames - 1), zoom=0.08 * i / (frames - 1))
              for i in range(frames)]
    request = GenerationRequest(prompt="interpolation ground truth", width=w, height=h,
                                num_frames=frames, fps=32, seed=3, camera=camera)
    return list(PreviewEngine().generate(request))


def run_method(method: str, kept: list[np.ndarray], model: str | None) -> list[np.ndarray]:
    method, _, quality = method.partition(":")  # flow:fast -> method flow, quality fast
    item = {"stage": "interpolate", "factor": 2, "method": method}
    if quality:
        item["quality"] = quality
    if method == "rife":
        item["model"] = model
    out, _ = run_post_chain(iter(kept), 16, resolve_post_chain([item], {}))
    return list(out)


def measure(method, truth, repeats, model):
    kept = truth[::2]
    run_method(method, kept[:2], model)  # warm-up: DIS objects, ffmpeg start, model load
    best = float("inf")
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = run_method(method, kept, model)
        best = min(best, time.perf_counter() - t0)
    assert len(out) == len(truth)
    mids = range(1, len(truth), 2)
    return (float(np.mean([psnr(out[i], truth[i]) for i in mids])),
            float(np.mean([ssim(out[i], truth[i]) for i in mids])), len(out) / best)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=9, help="16 fps input frames (default 9)")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs, best kept (default 2)")
    ap.add_argument("--sources", default="synthetic,preview")
    ap.add_argument("--threads", type=int, default=None, help="cv2.setNumThreads (default: cv2's)")
    args = ap.parse_args(argv)
    if args.threads is not None:
        cv2.setNumThreads(args.threads)
    if args.frames % 2 == 0:
        ap.error("--frames must be odd (the preview engine renders 4k+1 frames at 32 fps)")
    model = os.environ.get("REELFORGE_RIFE_WEIGHTS")
    methods = ["blend", "flow", "flow:fast", "minterpolate"] + (["rife"] if model else [])
    print(f"cv2 {cv2.__version__} ({cv2.getNumThreads()} threads), {os.cpu_count()} cpus; "
          f"{args.frames} input frames at 16 fps -> {2 * args.frames - 1} at 32 fps; best of "
          f"{args.repeats}; rife: {'on' if model else 'off (set REELFORGE_RIFE_WEIGHTS)'}\n")
    head = f"{'source':>9} {'res':>9} {'method':>12} {'PSNR dB':>8} {'SSIM':>7} {'out fps':>8}"
    print(head)
    print("-" * len(head))
    summary = []
    for source in args.sources.split(","):
        for h, w in RESOLUTIONS:
            truth = (synthetic_truth if source == "synthetic" else preview_truth)(h, w,
                                                                                 args.frames)
            rows = {}
            for method in methods:
                rows[method] = measure(method, truth, args.repeats, model)
                db, s, fps = rows[method]
                print(f"{source:>9} {f'{w}x{h}':>9} {method:>12} {db:8.2f} {s:7.4f} {fps:8.1f}",
                      flush=True)
            m = rows["minterpolate"]
            for name in ("flow", "flow:fast"):
                f = rows[name]
                summary.append(f"{source} {w}x{h}: {name} {f[0] - m[0]:+.2f} dB PSNR, "
                               f"{f[1] - m[1]:+.4f} SSIM vs minterpolate, at {f[2] / m[2]:.1f}x "
                               f"its speed")
    print("\n" + "\n".join(summary))
    print("\nout fps: output frames (inputs passed through included) per second of wall clock "
          "for the whole\nstage; PSNR/SSIM: mean over the reconstructed (dropped) frames.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Long-shot quality benchmark: seams (last_frame vs overlap) and colour drift (with and without
color_match), measured on renders through the real flow.

    python tests/perf/bench_chain.py [--size 256x160] [--segments 6] [--frames 49]

The engine is the synthetic continuation engine of tests/helpers/chain_engine.py: it reproduces the
seam causes of image-to-video chains (motion restart, a re-render jump in position and
exposure) and a warm colour cast that grows over each segment, so the figures measure what the
chaining machinery removes, not what a particular model does. Prints figures; asserts nothing.

- seam score: the largest frame-to-frame difference within 8 frames of a segment boundary,
  over the median difference elsewhere (1.0 = no visible seam);
- drift: CIEDE2000 mean of each segment's last frame to the shot's anchor (its start image),
  over a 10-segment chain with a still camera, so colour is all that changes.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
HALF_WINDOW = 8


def prefect_env(home: Path) -> None:
    os.environ.setdefault("PREFECT_HOME", str(home))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")


def render(root: Path, board: str, engine: str, params: dict) -> Path:
    from flows.render import EXIT_OK, run
    from flows.config.settings import RenderSettings
    from tests.helpers.synthetic import write_png

    root.mkdir(parents=True, exist_ok=True)
    size = board.split("resolution: ")[1].split()[0]
    width, height = map(int, size.split("x"))
    write_png(root / "start.png", width, height, seed=5)
    (root / "ep.yaml").write_text(board)
    settings = RenderSettings(storyboard=str(root / "ep.yaml"), output_dir=str(root / "out"),
                              post=[], retry_delay=0.0, workers=1, progress="lines",
                              engine={"name": engine, "options": {}, "params": params})
    with contextlib.redirect_stdout(io.StringIO()):
        status = run(settings)
    if status != EXIT_OK:
        raise SystemExit(f"render failed ({status}) for {root}")
    return root / "out" / "ep"


def board(size: str, segments: int, frames: int, chain: str) -> str:
    parts = ", ".join([f"{{frames: {frames}}}"] * segments)
    return (f"fps: 16\nresolution: {size}\nseed: 3\nshots:\n  - id: a\n    image: start.png\n"
            f"    prompt: a slow pan\n    segments: [{parts}]\n    chain: {chain}\n")


def seams(tmp: Path, size: str, segments: int, frames: int) -> None:
    from stages.render.overlap_join import seam_window_score
    from stages.media.video_io import read_frames

    modes = [("last_frame", "{mode: last_frame, color_match: none}", 1),
             ("overlap static (8)", "{mode: overlap, preset: static, color_match: none}", 8),
             ("overlap standard (16)", "{mode: overlap, color_match: none}", 16),
             ("overlap fast_motion (24)",
              "{mode: overlap, preset: fast_motion, color_match: none}", 24)]
    print(f"Seam score, {segments} segments of {frames} frames at {size} "
          f"(worst step within {HALF_WINDOW} frames of a boundary / median step)")
    print(f"{'engine':<18}{'mode':<26}{'seam':>8}{'vs last_frame':>15}{'frames':>8}{'s':>7}")
    for engine in ("continuation", "continuation_i2v"):
        base = None
        for label, chain, lead in modes:
            started = time.perf_counter()
            folder = render(tmp / f"{engine}-{label.split()[0]}{lead}",
                            board(size, segments, frames, chain), engine, {})
            seconds = time.perf_counter() - started
            shot = list(read_frames(folder / "shots" / "a.mp4"))
            step = frames - lead
            # Where each segment's new frames meet the previous one (the join's middle for
            # overlap: the window covers the whole join).
            boundaries = [frames - lead // 2 + k * step for k in range(segments - 1)]
            score = seam_window_score(shot, boundaries, HALF_WINDOW)
            base = base or score
            print(f"{engine:<18}{label:<26}{score:>8.2f}{score / base:>15.2f}{len(shot):>8}"
                  f"{seconds:>7.1f}")


def drift(tmp: Path, size: str) -> None:
    from tests.helpers.color_metrics import mean_delta_e
    from stages.media.video_io import load_png

    print("\nColour drift: CIEDE2000 mean of each segment's last frame to the anchor, "
          "10 segments of 33 frames, injected cast 0.03 per segment")
    rows = {}
    for mode in ("none", "previous", "anchor"):
        folder = render(tmp / f"drift-{mode}", board(size, 10, 33, f"{{color_match: {mode}}}"),
                        "continuation_i2v", {"drift": 0.03, "speed": 0.0, "jump": 0.0})
        anchor = load_png(folder.parent.parent / "start.png")
        rows[mode] = [mean_delta_e(load_png(folder / "frames" / f"a_{i}_last.png"), anchor)
                      for i in range(10)]
    print(f"{'color_match':<12}" + "".join(f"{i:>6}" for i in range(10)) + f"{'mean':>8}")
    for mode, values in rows.items():
        print(f"{mode:<12}" + "".join(f"{v:>6.1f}" for v in values)
              + f"{sum(values) / len(values):>8.2f}")
    final = {m: v[-1] for m, v in rows.items()}
    print(f"segment 10: anchor {final['anchor']:.2f} vs none {final['none']:.2f} "
          f"({final['anchor'] / final['none']:.2f}x), previous {final['previous']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="256x160")
    parser.add_argument("--segments", type=int, default=6)
    parser.add_argument("--frames", type=int, default=49)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        prefect_env(Path(tmp) / "prefect")
        from tests.helpers.chain_engine import register_engines

        register_engines()
        seams(Path(tmp), args.size, args.segments, args.frames)
        drift(Path(tmp), args.size)
    print(json.dumps({"size": args.size, "segments": args.segments, "frames": args.frames}))


if __name__ == "__main__":
    main()

"""3D LUT application speed: Pillow's Color3DLUT (stages.post.lut.apply_lut) against the float
NumPy trilinear reference it replaced (tests/helpers/lut_reference.py), on 1280x720 frames and a
33-point graded table; prints both times, the speed ratio and the largest difference in levels.

    python tests/perf/bench_lut.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def graded_table(n: int = 33) -> np.ndarray:
    """A smooth, non-separable look: gamma, a channel mix and a hue-dependent wobble."""
    from stages.post.lut import identity_table

    t = identity_table(n).astype(np.float64)
    r, g, b = t[..., 0], t[..., 1], t[..., 2]
    out = np.stack([0.8 * r**0.9 + 0.15 * g + 0.05 * np.sin(6 * b),
                    0.9 * g**1.1 + 0.1 * b * r,
                    0.7 * b + 0.2 * r * g + 0.1 * np.cos(5 * r)], -1)
    return np.clip(out, 0, 1).astype(np.float32)


def main(frames: int = 20) -> None:
    from stages.post.lut import apply_lut, format_cube, parse_cube
    from tests.helpers.lut_reference import reference_apply_3d

    lut = parse_cube(format_cube(graded_table()))
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8) for _ in range(4)]
    apply_lut(images[0], lut)  # builds the cached Pillow filter

    def timed(fn) -> float:
        start = time.perf_counter()
        for i in range(frames):
            fn(images[i % len(images)], lut)
        return (time.perf_counter() - start) / frames

    ours, pillow = timed(reference_apply_3d), timed(apply_lut)
    diff = max(int(np.abs(apply_lut(im, lut).astype(int) - reference_apply_3d(im, lut)).max())
               for im in images)
    print(f"1280x720, 33^3 LUT: numpy reference {ours * 1000:.1f} ms/frame, Pillow "
          f"{pillow * 1000:.1f} ms/frame, Pillow is {ours / pillow:.1f}x faster; "
          f"max difference {diff} level(s)", file=sys.__stdout__)


if __name__ == "__main__":
    main()

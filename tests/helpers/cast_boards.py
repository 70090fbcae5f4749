"""A storyboard with a cast and generated keyframes, written into a temp folder, for the cast
tests (tests/stages/*/test_cast*.py, tests/integration/test_cast_render.py, tests/perf/bench_cast.py).
The references carry a known colour pattern (quadrants) the identity score looks for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# The keeper's pattern: four quadrants of saturated colours no scene card draws together.
PATTERN = ((255, 0, 255), (0, 255, 255), (255, 255, 0), (0, 0, 255))

CAST_BOARD = """
fps: 8
resolution: 128x96
seed: 3
cast:
  keeper:
    images: [keeper_front.png, keeper_side.png]
    description: "an old lighthouse keeper"
    seed: 77
  gull:
    images: [gull.png]
shots:
  - id: s01
    cast: [keeper]
    prompt: "{keeper} climbs the stairs"
    frames: 9
  - id: s02
    cast: [keeper]
    image: {generate: "{keeper} at the top at dusk", seed: 5}
    prompt: "{keeper} looks out"
    frames: 9
  - id: s03
    image: {generate: "the sea at night"}
    prompt: "waves"
    frames: 9
"""


def pattern_image(size: int = 32, colours=PATTERN) -> np.ndarray:
    half = size // 2
    img = np.zeros((size, size, 3), np.uint8)
    img[:half, :half], img[:half, half:], img[half:, :half], img[half:, half:] = colours
    return img


def write_cast_board(folder: Path, text: str = CAST_BOARD) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pattern_image()).save(folder / "keeper_front.png")
    Image.fromarray(pattern_image(colours=PATTERN[::-1])).save(folder / "keeper_side.png")
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(folder / "gull.png")
    path = folder / "cast.yaml"
    path.write_text(text)
    return path


def identity_score(frame: np.ndarray, reference: np.ndarray) -> float:
    """How present `reference`'s colour pattern is in `frame`: 1 - the mean absolute error of the
    best-matching square window at the preview's inset place (engine.preview.reference), 0..1."""
    from engine.preview.reference import reference_box, reference_inset

    height, width = frame.shape[:2]
    top, left, side = reference_box(width, height)
    want = reference_inset(reference, width, height).astype(np.float32)
    got = frame[top:top + side, left:left + side].astype(np.float32)
    return float(1.0 - np.abs(got - want).mean() / 255.0)

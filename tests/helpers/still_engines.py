"""Test image engines for the keyframe flow: `stills_test` makes a flat still from the seed and
counts its calls (no labels on the pixels, so two shots can plan the same keyframe key);
`stills_broken` fails to load like an engine whose weights are missing. BOARD: two shots that
share a start keyframe, the second with an end keyframe too (write it with
tests.helpers.cast_boards.write_cast_board)."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.base import Engine, EngineLoadError, EngineSpec, ImageRequest
from engine.registry import register, unregister

# s01's and s02's start keyframes have one key (same engine, prompt, seed, size).
BOARD = """
fps: 8
resolution: 128x96
seed: 3
shots:
  - id: s01
    image: {generate: "the harbour at dawn", engine: stills_test, seed: 5}
    prompt: "boats"
    frames: 9
  - id: s02
    image: {generate: "the harbour at dawn", engine: stills_test, seed: 5}
    end_image: {generate: "the harbour at noon", engine: stills_test, seed: 6}
    prompt: "more boats"
    frames: 9
"""

STILLS = EngineSpec(name="stills_test", modes=frozenset({"t2i"}), resolution_multiple=16,
                    max_references=0)
BROKEN = EngineSpec(name="stills_broken", modes=frozenset({"t2i"}), resolution_multiple=16)


class CountingStills(Engine):
    spec = STILLS
    calls: list[ImageRequest] = []  # every generate_image request, across instances

    def __init__(self, **options: Any) -> None:
        self.options = options

    def identity(self) -> dict[str, Any]:
        return {"engine": self.spec.name}

    def generate(self, request, progress=None):
        raise NotImplementedError("an image engine")

    def generate_image(self, request: ImageRequest, progress=None) -> np.ndarray:
        type(self).calls.append(request)
        for step in (1, 2):
            if progress is not None:
                progress(step, 2)
        shade = request.seed * 37 % 256
        return np.full((request.height, request.width, 3), shade, np.uint8)


class BrokenStills(CountingStills):
    spec = BROKEN

    def load(self) -> None:
        raise EngineLoadError("engine 'stills_broken': no weights at /models/none "
                              "(engine.model)")


def register_still_engines() -> None:
    CountingStills.calls = []
    register("stills_test", STILLS, CountingStills, replace=True)
    register("stills_broken", BROKEN, BrokenStills, replace=True)


def unregister_still_engines() -> None:
    for name in ("stills_test", "stills_broken"):
        unregister(name)

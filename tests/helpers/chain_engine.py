"""A synthetic engine with the two seam causes and the drift that real image-to-video chains
show, so chaining strategies can be measured through the real flow without weights:

1. motion restart: from a start image the camera pan starts from rest and takes RESTART frames
   to reach its speed (i2v models "re-launch" motion at every segment);
2. re-render jump: every generated frame after frame 0 is several percent brighter or darker
   and sits a couple of pixels off (seeded per segment): the model never reproduces the start
   frame exactly, which shows as a jump and a flicker at each boundary;
3. colour drift: a warm cast grows over each segment (`params["drift"]` of full scale at the
   last frame), which chains pass on and compound.

`params`: drift (0), speed (SPEED px/frame), jump (1; 0 turns the re-render jump off).

With context frames (overlap mode on an engine that conditions on several frames, like VACE) it
continues the context's measured motion without a restart, and re-renders the context frames
with the segment's exposure. Frame 0 is the start image exactly, like the preview.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from engine.base import Engine, EngineSpec, GenerationRequest
from engine.preview import PREVIEW_SPEC
from engine.registry import register

RESTART = 6  # frames the pan takes to reach full speed from a start image
SPEED = 1.5  # pixels per frame

CONTEXT_SPEC = dataclasses.replace(PREVIEW_SPEC, name="continuation", draws_labels=False,
                                   context_frames=True, honours=frozenset({"seed"}))
I2V_SPEC = dataclasses.replace(CONTEXT_SPEC, name="continuation_i2v", context_frames=False)


def texture(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(30, 225, size=(height // 6 + 2, width // 6 + 2, 3), dtype=np.uint8)
    return cv2.resize(base, (width, height), interpolation=cv2.INTER_CUBIC)


def shift(image: np.ndarray, dx: float, dy: float = 0.0) -> np.ndarray:
    matrix = np.float32([[1, 0, -dx], [0, 1, -dy]])
    return cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


def pan_speed(frames: np.ndarray) -> float:
    """The horizontal speed (px/frame) of the last two frames, by phase correlation."""
    a, b = (cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32) for f in frames[-2:])
    window = cv2.createHanningWindow((a.shape[1], a.shape[0]), cv2.CV_32F)
    (dx, _dy), _ = cv2.phaseCorrelate(a, b, window)
    return -float(dx)  # content moving left by dx is a pan of +dx


class ContinuationEngine(Engine):
    def __init__(self, spec: EngineSpec = CONTEXT_SPEC, **options) -> None:
        self.spec = spec

    def identity(self) -> dict:
        return {"engine": self.spec.name, "revision": "1"}

    def generate(self, request: GenerationRequest, progress=None) -> np.ndarray:
        n, rng = request.num_frames, np.random.default_rng(request.seed)
        drift = float(request.params.get("drift", 0.0))
        speed = float(request.params.get("speed", SPEED))
        jump = float(request.params.get("jump", 1.0))  # 0: no re-render jump
        exposure = 1.0 + jump * rng.choice([-1, 1]) * rng.uniform(0.08, 0.12)
        off_x, off_y = jump * rng.choice([-1, 1], 2) * rng.uniform(1.5, 2.5, 2)
        start = request.start_image if request.start_image is not None else texture(
            request.width, request.height, request.seed)
        context = request.context_frames if self.spec.context_frames else None
        if context is not None:
            # Re-render the context, then continue its motion at its speed: no restart.
            speed, known = pan_speed(context), len(context)
            raw = list(context) + [shift(context[-1], speed * (t - known + 1))
                                   for t in range(known, n)]
        else:
            offsets = np.cumsum([speed * min(1.0, t / RESTART) for t in range(n)])
            raw = [shift(start, offsets[t] - offsets[0]) for t in range(n)]
        frames = []
        for t, frame in enumerate(raw):
            f = frame.astype(np.float32)
            if t > 0:
                f = shift(frame, off_x, off_y).astype(np.float32) * exposure
                cast = drift * 255.0 * t / max(n - 1, 1)
                f[..., 0] += cast
                f[..., 2] -= cast
            frames.append(np.clip(f + 0.5, 0, 255).astype(np.uint8))
            if progress is not None:
                progress(t + 1, n)
        frames[0] = start if context is None else frames[0]
        return np.stack(frames)


def register_engines() -> None:
    register("continuation", CONTEXT_SPEC, lambda **o: ContinuationEngine(CONTEXT_SPEC, **o),
             replace=True)
    register("continuation_i2v", I2V_SPEC, lambda **o: ContinuationEngine(I2V_SPEC, **o),
             replace=True)

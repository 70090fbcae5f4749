"""Frame-rate changes by frame synthesis: `interpolate` (factor 2/4/8 or a target fps) and
`slowmo` (N times the frames at the same fps), cut-aware.

Output frame j sits at source position p_j = j·step, with step = source fps / output fps kept as
an exact fraction (24 -> 60 fps is step 2/5: positions 0, 0.4, 0.8, 1.2, ...), so n input frames
always give floor((n-1)/step) + 1 output frames, whatever the ratio, and no rounding drifts over a
long clip. A position between frames i and i+1 is synthesised by the chosen method at
t = p_j - i; a position on a frame is that frame.

Across a cut (frame i+1 starts a new scene) nothing is synthesised: positions before the midpoint
hold frame i, the others hold frame i+1, so no frame ever mixes two scenes and the timing of the
cut stays where it was.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Iterable, Iterator, Protocol, Sequence

import numpy as np

from stages.post.interpolate import blend_pair, interpolate_pair
from stages.post.stream import PostFrame, check_image


class PairSynth(Protocol):
    """Synthesises frames between two frames of one scene at fractional times in (0, 1)."""

    def between(self, f0: np.ndarray, f1: np.ndarray, times: Sequence[float]) -> list[np.ndarray]:
        ...


class FlowSynth:
    """Our DIS optical-flow interpolator (stages.post.interpolate)."""

    def __init__(self, quality: str = "medium"):
        self.quality = quality

    def between(self, f0, f1, times):
        return interpolate_pair(f0, f1, times, self.quality)


class BlendSynth:
    """Plain cross-fade: the baseline every other method must beat."""

    def between(self, f0, f1, times):
        return [blend_pair(f0, f1, t) for t in times]


def as_fraction(value: float) -> Fraction:
    """An fps as an exact fraction: 16 -> 16, 23.976... -> 24000/1001."""
    if isinstance(value, Fraction):
        return value
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"fps must be a positive number, got {value!r}")
    return Fraction(value).limit_denominator(1_000_000)


def step_for(src_fps: float, dst_fps: float) -> Fraction:
    """Source frames advanced per output frame."""
    return as_fraction(src_fps) / as_fraction(dst_fps)


def retimed_count(n: int, step: Fraction) -> int:
    """Output frames for n input frames: positions 0, step, 2·step, ... up to n - 1."""
    if n <= 0:
        return 0
    return math.floor((n - 1) / step) + 1


def _positions(step: Fraction) -> Iterator[Fraction]:
    j = 0
    while True:
        yield j * step
        j += 1


def retime(stream: Iterable[PostFrame], step: Fraction, synth: PairSynth,
           where: str = "interpolate") -> Iterator[PostFrame]:
    """Resample `stream` to one frame per `step` source frames, synthesising in-between frames
    with `synth` inside scenes and holding the nearest frame across cuts. Holds two frames."""
    if step <= 0:
        raise ValueError(f"{where}: step must be > 0, got {step}")
    positions = _positions(step)
    pos = next(positions)
    prev: PostFrame | None = None
    scene = 0
    last_scene: int | None = None  # scene of the last emitted frame

    def out(image: np.ndarray, sid: int, source_cut: bool) -> PostFrame:
        nonlocal last_scene
        cut = source_cut if last_scene is None else sid != last_scene
        last_scene = sid
        return PostFrame(image, cut)

    for i, item in enumerate(stream):
        image = check_image(item.image, f"{where}: frame {i}")
        if prev is not None:
            if image.shape != prev.image.shape:
                raise ValueError(f"{where}: frame {i} has shape {image.shape}, the frames "
                                 f"before it {prev.image.shape}")
            new_scene = scene + 1 if item.cut else scene
            times = []
            while pos < i:
                times.append(pos - (i - 1))
                pos = next(positions)
            inner = [float(t) for t in times if t != 0]
            if item.cut:
                made = [prev.image if t < 0.5 else image for t in inner]
            else:
                made = synth.between(prev.image, image, inner) if inner else []
            made_iter = iter(made)
            for t in times:
                if t == 0:
                    yield out(prev.image, scene, prev.cut)
                else:
                    frame = next(made_iter)
                    sid = new_scene if (item.cut and t >= 0.5) else scene
                    # Held frames are the inputs themselves: copy, so a consumer editing one
                    # output in place cannot change another.
                    yield out(frame.copy() if item.cut else frame, sid, False)
            scene = new_scene
        # Copy: readers may reuse one buffer for every frame they hand out.
        prev = PostFrame(np.array(image, copy=True), item.cut)
    if prev is not None and pos == i:  # the last frame sits exactly on an output position
        yield out(prev.image, scene, prev.cut)

"""Seamless loops: ping-pong (forward, then backward) and crossfade (the end blends into the start).

pingpong: frames 0 .. n-2, an eased turn, then n-2 .. 0, so the clip ends on its first frame and
plays back and forth forever. A plain turn (… n-2, n-1, n-2 …) reverses the motion within one
frame, which reads as a bounce; with `join` J > 0 the turn has 2J+1 frames at source positions
n-2 + sin(πk / (2J+2)), k = 1 .. 2J+1, synthesised by optical-flow interpolation between frames
n-2 and n-1, so motion slows into the turn and speeds up out of it. n frames give 2n - 1 + 2J.
The backward half needs the frames again in reverse order: they are spooled to a temporary file
(raw RGB) rather than kept in memory, so memory does not grow with the clip's length.

crossfade: with k = min(overlap, n // 2), the output is frames k .. n-1 where the last k are
blended with frames 0 .. k-1 (the start's weight rising from 1/(k+1) to k/(k+1)); playing it in a
loop, the last frame flows into frame k, which follows frame k-1 in the source. n frames give
n - k. Holds 2k frames.
"""

from __future__ import annotations

import math
import tempfile
from collections import deque
from typing import Any, Iterable, Iterator, Literal, Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from stages.post.interpolate import interpolate_pair
from stages.post.registry import register
from stages.post.stream import PostFrame, check_image
from stages.render.transitions import crossfade


class LoopParams(BaseModel):
    """Make the clip loop: `pingpong` (with an eased turn of `join` frames) or `crossfade`."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)
    mode: Literal["pingpong", "crossfade"] = "pingpong"
    """pingpong: forward, an eased turn, backward; crossfade: the last `overlap` frames blend into the first."""
    join: int = Field(2, ge=0, le=8)
    """pingpong: the turn has 2*join+1 flow-interpolated frames (0: a hard turn)."""
    overlap: int = Field(8, ge=1, le=480)
    """crossfade: frames of the end blended into the start (dropped from the start)."""
    quality: Literal["ultrafast", "fast", "medium"] = "medium"
    """Optical-flow preset for the pingpong turn's frames: ultrafast, fast or medium."""

    @model_validator(mode="after")
    def _mode_keys(self):
        if self.mode == "pingpong" and "overlap" in self.model_fields_set:
            raise ValueError("overlap applies to mode: crossfade; ping-pong uses join")
        if self.mode == "crossfade" and "join" in self.model_fields_set:
            raise ValueError("join applies to mode: pingpong; crossfade uses overlap")
        return self


def loop_frames_out(n: int, params: LoopParams) -> int:
    if n <= 1:
        return n
    if params.mode == "pingpong":
        return 2 * n - 1 + 2 * params.join
    return n - min(params.overlap, n // 2)


def turn_times(join: int) -> list[float]:
    """Positions past frame n-2 of the turn's frames (the middle one is frame n-1 itself)."""
    count = 2 * join + 1
    return [math.sin(math.pi * k / (count + 1)) for k in range(1, count + 1)]


class _Spool:
    """Frames written once, read back in any order, from an anonymous temporary file."""

    def __init__(self):
        self.file = tempfile.TemporaryFile()
        self.shape: tuple[int, ...] | None = None
        self.count = 0

    def append(self, image: np.ndarray) -> None:
        if self.shape is None:
            self.shape = image.shape
        self.file.write(np.ascontiguousarray(image).tobytes())
        self.count += 1

    def read(self, index: int) -> np.ndarray:
        size = int(np.prod(self.shape))
        self.file.seek(index * size)
        data = self.file.read(size)
        self.file.seek(0, 2)
        return np.frombuffer(data, np.uint8).reshape(self.shape).copy()

    def close(self) -> None:
        self.file.close()


def pingpong_stream(stream: Iterable[PostFrame], join: int = 2,
                    quality: str = "medium") -> Iterator[PostFrame]:
    spool = _Spool()
    cuts: list[bool] = []  # one flag per frame: tiny next to the frames themselves
    try:
        prev: PostFrame | None = None
        last: PostFrame | None = None
        for i, item in enumerate(stream):
            image = check_image(item.image, f"loop: frame {i}")
            if spool.shape is not None and image.shape != spool.shape:
                raise ValueError(f"loop: frame {i} has shape {image.shape}, the frames before "
                                 f"it {spool.shape}")
            spool.append(image)
            cuts.append(item.cut)
            if last is not None:
                yield last  # frames 0 .. n-2, each once its successor shows it is not the last
            prev, last = last, PostFrame(np.array(image, copy=True), item.cut)
        n = spool.count
        if n == 0:
            return
        if n == 1:
            yield last
            return
        times = turn_times(join)
        inner = [t for t in times if t < 1.0]
        if last.cut:  # the last frame starts a scene: hold, never blend across the cut
            made = [prev.image if t < 0.5 else last.image for t in inner]
        else:
            made = interpolate_pair(prev.image, last.image, inner, quality) if inner else []
        made_iter = iter(made)
        for t in times:
            if t >= 1.0:
                yield PostFrame(last.image.copy(), last.cut)
            else:
                yield PostFrame(next(made_iter).copy(), False)
        # Backward: frame i follows frame i+1, so the cut between them now sits on frame i.
        for i in range(n - 2, -1, -1):
            yield PostFrame(spool.read(i), cuts[i + 1])
    finally:
        spool.close()


def crossfade_loop_stream(stream: Iterable[PostFrame], overlap: int = 8) -> Iterator[PostFrame]:
    head: list[PostFrame] = []  # the first `overlap` frames, to blend into at the end
    tail: deque[PostFrame] = deque()  # frames that might still be among the last k
    for i, item in enumerate(stream):
        image = check_image(item.image, f"loop: frame {i}")
        item = PostFrame(np.array(image, copy=True), item.cut)
        if len(head) < overlap:
            head.append(item)
            continue
        tail.append(item)
        if len(tail) > overlap:
            yield tail.popleft()
    n = len(head) + len(tail)
    if n <= 1:
        yield from head
        return
    k = min(overlap, n // 2)
    # head holds frames 0 .. min(overlap, n)-1; the blend needs frames 0 .. k-1 at the end and
    # frames k .. n-k-1 unchanged before it.
    frames = head[k:] + list(tail)
    body, end = frames[:len(frames) - k], frames[len(frames) - k:]
    yield from body
    blended = crossfade([f.image for f in end], [f.image for f in head[:k]])
    for j, image in enumerate(blended):
        yield PostFrame(image, end[j].cut and j == 0)


def _run(stream: Iterator[PostFrame], fps: float, params: LoopParams,
         digests: Mapping[str, str]) -> Iterator[PostFrame]:
    if params.mode == "pingpong":
        return pingpong_stream(stream, params.join, params.quality)
    return crossfade_loop_stream(stream, params.overlap)


def _count(n: int, fps: Any, params: LoopParams) -> int:
    return loop_frames_out(n, params)


register("loop", LoopParams, _run, frames_out=_count)

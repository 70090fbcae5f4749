"""Frames as they travel through a post chain: each carries the cut flag of the scene list.

`scene_detect` marks the first frame of every new scene with `cut=True`; every later stage keeps
the marks on the frames it outputs, so the cut list is computed once and reaches every temporal
stage in the same stream (no second pass, no list held beside the video). A temporal stage never
mixes frames of different scenes: `windows` hands it only same-scene neighbours, and frame
interpolation holds the nearest frame across a cut instead of synthesising one.

Everything here is a generator holding at most a window of frames: memory does not grow with the
length of the video.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np


@dataclass(slots=True)
class PostFrame:
    image: np.ndarray  # uint8 RGB (H, W, 3)
    cut: bool = False  # first frame of a new scene: nothing before it may blend into it


def as_post_frames(frames: Iterable[np.ndarray]) -> Iterator[PostFrame]:
    for frame in frames:
        yield PostFrame(frame)


def images(stream: Iterable[PostFrame]) -> Iterator[np.ndarray]:
    for item in stream:
        yield item.image


def check_image(image: object, where: str) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"{where}: frames must be uint8 RGB arrays of shape (H, W, 3), "
                         f"got dtype {a.dtype} shape {a.shape}")
    return a


@dataclass(slots=True)
class Window:
    """One frame with its same-scene neighbours, as a temporal stage sees it."""

    index: int  # position of `center` in the stream
    center: PostFrame
    before: list[PostFrame]  # nearest last
    after: list[PostFrame]  # nearest first
    data: Any = None  # what `prepare` computed for the centre (computed once per frame)
    before_data: list[Any] = field(default_factory=list)  # `prepare` results of `before`
    after_data: list[Any] = field(default_factory=list)  # ... and of `after`


def windows(
    stream: Iterable[PostFrame], radius: int, prepare: Callable[[PostFrame], Any] | None = None
) -> Iterator[Window]:
    """Slide a window of `radius` frames each side over the stream, never across a cut.

    `prepare(frame) -> data` runs once per frame (gray conversion, statistics, ...) and its
    result is handed to every window the frame takes part in. Holds 2·radius + 1 frames.
    """
    buf: deque[tuple[PostFrame, int, object]] = deque()  # (frame, scene id, data)
    scene = -1
    index = 0  # stream index of buf's centre candidate
    centre = 0  # position in buf of the next frame to emit

    def emit(pos: int) -> Window:
        frame, sid, data = buf[pos]
        items = list(buf)
        before = [(f, d) for f, s, d in items[max(0, pos - radius):pos] if s == sid]
        after = [(f, d) for f, s, d in items[pos + 1:pos + 1 + radius] if s == sid]
        return Window(index, frame, [f for f, _ in before], [f for f, _ in after], data,
                      [d for _, d in before], [d for _, d in after])

    for item in stream:
        if item.cut or scene < 0:
            scene += 1
        buf.append((item, scene, prepare(item) if prepare else None))
        if len(buf) - 1 - centre >= radius:  # the centre's look-ahead is complete
            yield emit(centre)
            index += 1
            centre += 1
            if centre > radius:
                buf.popleft()
                centre -= 1
    while centre < len(buf):
        yield emit(centre)
        index += 1
        centre += 1

"""The part of an input video (v2v source, animate driving video) that one segment uses.

A segment starting `start_s` seconds into its shot takes the source frames at the same times,
sampled at the plan's fps (nearest frame; a source at another frame rate is resampled), cover-
resized to the segment's size. A source shorter than the shot holds its last frame.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import numpy as np

from engine.images import cover_resize
from stages.media.probe import video_info
from stages.media.video_io import read_frames


def sampled_frames(path: Path, start_s: float, frames: int, fps: float, width: int,
                   height: int) -> Iterator[np.ndarray]:
    """`frames` frames of `path` from `start_s` at `fps`, cover-resized; streaming (a repeated
    source frame is the same array)."""
    info = video_info(path)
    # Nearest source frame, halves rounding up (not to even), so timing is monotonic.
    wanted = [min(max(info.frames, 1) - 1,
                  max(0, math.floor((start_s + i / fps) * info.fps + 0.5 + 1e-9)))
              for i in range(frames)]
    decoded = enumerate(read_frames(path))
    index, raw = -1, None
    shown, current = None, None
    for target in wanted:
        while index < target:
            try:
                index, raw = next(decoded)
            except StopIteration:  # fewer frames than the container said: hold the last
                break
        if raw is None:
            raise ValueError(f"{path}: no frames could be decoded")
        if shown != index:  # resize each source frame once, however often it is repeated
            shown, current = index, cover_resize(raw, width, height)
        yield current


def video_slice(path: Path, start_s: float, frames: int, fps: float, width: int,
                height: int) -> np.ndarray:
    """sampled_frames as one uint8 (frames, height, width, 3) array."""
    return np.stack(list(sampled_frames(path, start_s, frames, fps, width, height)))

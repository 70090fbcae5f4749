"""The part of an input video (v2v source, animate driving video) that one segment uses.

A segment starting `start_s` seconds into its shot takes the source frames at the same times,
sampled at the plan's fps (nearest frame; a source at another frame rate is resampled), cover-
resized to the segment's size. A source shorter than the shot holds its last frame.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from engine.images import cover_resize
from stages.media.probe import video_info
from stages.media.video_io import read_frames


def video_slice(path: Path, start_s: float, frames: int, fps: float, width: int,
                height: int) -> np.ndarray:
    info = video_info(path)
    # Nearest source frame, halves rounding up (not to even), so timing is monotonic.
    wanted = [min(info.frames - 1, max(0, math.floor((start_s + i / fps) * info.fps + 0.5 + 1e-9)))
              for i in range(frames)]
    needed = set(wanted)
    picked: dict[int, np.ndarray] = {}
    last = max(wanted)
    for index, frame in enumerate(read_frames(path)):
        if index in needed:
            picked[index] = cover_resize(frame, width, height)
        if index >= last:
            break
    if not picked:
        raise ValueError(f"{path}: no frames could be decoded")
    held = picked[max(picked)]
    return np.stack([picked.get(i, held) for i in wanted])

"""Tiny control clips made in the tests: a bright square moving right over a dark background,
so edges, grey and optical flow have something to find (no media files, nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.media.video_io import write_video


def square_frames(frames: int = 12, width: int = 64, height: int = 48, step: int = 2,
                  size: int = 16) -> np.ndarray:
    """uint8 (frames, height, width, 3): a white square moving `step` pixels right per frame."""
    video = np.full((frames, height, width, 3), 30, np.uint8)
    top = (height - size) // 2
    for i in range(frames):
        left = 8 + i * step
        video[i, top:top + size, left:left + size] = 230
    return video


def write_square_clip(path: Path, frames: int = 12, fps: int = 8, width: int = 64,
                      height: int = 48, codec: str = "h264") -> Path:
    """The moving square as a video file (h264 .mp4 by default, ffv1 for .mkv)."""
    write_video(path, square_frames(frames, width, height), fps, codec=codec,
                crf=0 if codec != "ffv1" else 18, preset="ultrafast")
    return path


def write_frames(path: Path, frames: np.ndarray, fps: int = 8) -> Path:
    """uint8 (T, H, W, 3) `frames` as a lossless FFV1 .mkv."""
    write_video(path, frames, fps, codec="ffv1")
    return path

"""Locating and running the ffmpeg bundled with imageio-ffmpeg, and turning its failures into errors
that name the file.

ffmpeg is always run with argument lists (never a shell). There is no ffprobe in the bundled
build, so stream facts come from ffmpeg's own stderr header and from decoding (stages.media.probe).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg

__all__ = ["MP4_LIKE", "ffmpeg_exe", "run_ffmpeg"]

# Containers that take MP4 flags (+faststart, use_metadata_tags, the hvc1 tag for H.265).
MP4_LIKE = {".mp4", ".mov", ".m4v"}


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled by imageio-ffmpeg."""
    return imageio_ffmpeg.get_ffmpeg_exe()


def run_ffmpeg(args: list[str], path: Path) -> subprocess.CompletedProcess:
    """Run ffmpeg with `args` on the input `path` and return the finished process (stdout and
    stderr captured as bytes). A missing `path` raises FileNotFoundError, a file without a video
    stream ValueError, any other failure RuntimeError with the tail of ffmpeg's error.

    Callers in this package call it as `ffmpeg.run_ffmpeg(...)` (through the module), so one
    wrapper (tests/helpers/fault_points.py) sees every ffmpeg run.
    """
    if not path.is_file():
        raise FileNotFoundError(f"video not found: {path}")
    proc = subprocess.run([ffmpeg_exe(), *args], stdin=subprocess.DEVNULL,
                          capture_output=True, check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        if "matches no streams" in err:
            raise ValueError(f"{path} has no video stream")
        raise RuntimeError(f"ffmpeg failed on {path} (status {proc.returncode}): {err[-2000:]}")
    return proc

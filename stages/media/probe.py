"""Stream facts of a video file: size, frame rate and the exact frame count (video_info), and
its colour description (video_color: range, matrix, primaries, transfer).

The bundled ffmpeg has no ffprobe, so size and rate are parsed from ffmpeg's stderr header and
frames are counted by running ffmpeg to its null muxer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from stages.media import ffmpeg

__all__ = ["VideoColor", "VideoInfo", "video_color", "video_info"]


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    frames: int
    duration_s: float


_STREAM_RE = re.compile(r"^\s*Stream #\d+:\d+.*?: Video: (.*)$", re.M)
_SIZE_RE = re.compile(r"(?<![\w.])([1-9]\d*)x([1-9]\d*)(?![\w])")
_FPS_RE = re.compile(r"(\d+(?:\.\d+)?)(k?) (fps|tbr)\b")
_DURATION_RE = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")


def _snap_fps(value: float) -> float:
    """ffmpeg prints 2 decimals (23.98); snap to the exact NTSC rate n*1000/1001 when it fits."""
    if value <= 0 or float(value).is_integer():
        return float(value)
    ntsc = round(value * 1.001) / 1.001
    if abs(ntsc - value) < 0.006:
        return ntsc
    return float(value)


def _parse_video_stream(stderr: str) -> tuple[int, int, float]:
    header = stderr.split("Stream mapping:", 1)[0].split("Output #", 1)[0]
    m = _STREAM_RE.search(header)
    if not m:
        raise ValueError("no video stream")
    line = m.group(1)
    size = _SIZE_RE.search(line)
    if not size:
        raise RuntimeError(f"could not parse the frame size from ffmpeg: {line!r}")
    fps = 0.0
    found = {kind: (float(v) * (1000 if k else 1)) for v, k, kind in _FPS_RE.findall(line)}
    if "fps" in found:
        fps = found["fps"]
    elif "tbr" in found:
        fps = found["tbr"]
    return int(size.group(1)), int(size.group(2)), _snap_fps(fps)


# Codecs where every packet is exactly one whole frame: counting packets (``-c copy``) is exact
# and avoids decoding (FFV1 at 832x480 decodes at ~70 frames/s on 2 cores; copying is ~instant).
_INTRA_ONLY_CODECS = {"ffv1", "rawvideo", "png", "huffyuv", "ffvhuff", "utvideo"}


def _count_frames(path: Path, copy: bool) -> tuple[int, str]:
    args = ["-hide_banner", "-nostdin", "-nostats", "-progress", "pipe:1",
            "-i", str(path), "-map", "0:v:0"]
    if copy:
        args += ["-c", "copy"]
    proc = ffmpeg.run_ffmpeg(args + ["-f", "null", "-"], path)
    stderr = proc.stderr.decode("utf-8", "replace")
    counts = re.findall(r"^frame=\s*(\d+)\s*$", proc.stdout.decode("ascii", "replace"), re.M)
    if not counts:
        raise RuntimeError(f"could not count the frames of {path}: {stderr[-2000:]}")
    return int(counts[-1]), stderr


def video_info(path: Path | str) -> VideoInfo:
    """Size, fps and the exact frame count of the first video stream. ``duration_s`` is
    ``frames / fps``.

    Intra-only codecs (FFV1, ...) are counted by packet (one packet = one frame); everything else
    is decoded to ffmpeg's null muxer (no pixel conversion, no pipe traffic), because packet
    counts are not frame counts for codecs with reordering or multi-frame packets.
    """
    path = Path(path)
    frames, stderr = _count_frames(path, copy=True)
    try:
        width, height, fps = _parse_video_stream(stderr)
    except ValueError:
        raise ValueError(f"{path} has no video stream") from None
    m = _STREAM_RE.search(stderr)
    codec = m.group(1).split(",", 1)[0].split()[0].strip() if m else ""
    if codec not in _INTRA_ONLY_CODECS:
        frames, _ = _count_frames(path, copy=False)
    if fps > 0:
        duration = frames / fps
    else:
        m = _DURATION_RE.search(stderr)
        duration = (int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))) if m else 0.0
    return VideoInfo(width=width, height=height, fps=fps, frames=frames, duration_s=duration)


@dataclass(frozen=True)
class VideoColor:
    """The colour tags of a video stream as ffmpeg names them ("bt709", "tv", ...); "unknown"
    where the stream does not say."""
    range: str
    matrix: str
    primaries: str
    transfer: str


_PIXFMT_RE = re.compile(r"^\s*[0-9a-z_]+\(([^)]*)\)")
_RANGES = {"tv", "pc"}
_FIELD_ORDERS = {"progressive", "top first", "bottom first", "top coded first (swapped)",
                 "bottom coded first (swapped)"}


def _parse_color(stream_line: str) -> VideoColor:
    """From ffmpeg's `yuv420p(tv, bt709, progressive)` (all three equal) or
    `yuv420p(tv, bt709/unknown/unknown)` (matrix/primaries/transfer) after the codec."""
    rng = matrix = primaries = transfer = "unknown"
    parts = stream_line.split(", ", 1)
    m = _PIXFMT_RE.match(parts[1]) if len(parts) > 1 else None
    if m:
        for item in (i.strip() for i in m.group(1).split(",")):
            if item in _RANGES:
                rng = item
            elif item in _FIELD_ORDERS or not item:
                continue
            elif "/" in item:
                matrix, primaries, transfer = (item.split("/") + ["unknown"] * 3)[:3]
            else:
                matrix = primaries = transfer = item
    return VideoColor(rng, matrix, primaries, transfer)


def video_color(path: Path | str) -> VideoColor:
    """The colour tags of the first video stream (read from its header; nothing is decoded)."""
    path = Path(path)
    args = ["-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0", "-frames:v", "0",
            "-c", "copy", "-f", "null", "-"]
    stderr = ffmpeg.run_ffmpeg(args, path).stderr.decode("utf-8", "replace")
    header = stderr.split("Stream mapping:", 1)[0].split("Output #", 1)[0]
    m = _STREAM_RE.search(header)
    if not m:
        raise ValueError(f"{path} has no video stream")
    return _parse_color(m.group(1))

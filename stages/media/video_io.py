"""Video and image I/O on top of the ffmpeg bundled with imageio-ffmpeg.

- Intermediates are lossless: FFV1 in MKV (``codec="ffv1"``, stored as ``bgr0`` so RGB round-trips
  bit-exactly) and PNG for single frames.
- Deliverables are H.264 / H.265 in MP4 (yuv420p, BT.709-tagged, ``+faststart``).
- Every write is atomic (stages.media.atomic): a crashed or aborted write leaves nothing at the final path.
- Frames stream one at a time; memory does not grow with video length.

ffmpeg is always run with argument lists (never a shell). There is no ffprobe in the bundled
build, so stream facts come from ffmpeg's own stderr header and from decoding.
"""

from __future__ import annotations

from collections import deque

import itertools
import re
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import cv2
import imageio_ffmpeg
import numpy as np

from stages.media.atomic import atomic_path, atomic_write_bytes

__all__ = [
    "CODECS",
    "VideoInfo",
    "VideoWriter",
    "write_video",
    "read_frames",
    "video_info",
    "read_metadata",
    "copy_with_metadata",
    "save_png",
    "load_png",
    "last_frame",
    "ffmpeg_exe",
]

CODECS = ("ffv1", "h264", "h265")
_FFV1_CONTAINERS = {".mkv", ".nut", ".avi"}
_MP4_LIKE = {".mp4", ".mov", ".m4v"}


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled by imageio-ffmpeg."""
    return imageio_ffmpeg.get_ffmpeg_exe()


# --------------------------------------------------------------------------------------------
# Writing


def _check_frame(frame: object, width: int, height: int) -> np.ndarray:
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"frame must be a numpy uint8 array of shape ({height}, {width}, 3), "
                         f"got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise ValueError(f"frame dtype must be uint8, got {frame.dtype} (shape {frame.shape})")
    if frame.shape != (height, width, 3):
        raise ValueError(f"frame shape must be ({height}, {width}, 3) (HxWx3 RGB), got {frame.shape}")
    return np.ascontiguousarray(frame)


def _as_fps(fps: float | int | Fraction) -> float | Fraction:
    if isinstance(fps, Fraction):
        value: float | Fraction = fps
    else:
        value = float(fps)
    if not value > 0:
        raise ValueError(f"fps must be > 0, got {fps!r}")
    return value


def _metadata_params(metadata: Mapping[str, str] | None) -> list[str]:
    params: list[str] = []
    for key, value in (metadata or {}).items():
        key = str(key)
        value = str(value)
        if not key or "=" in key or "\0" in key or "\n" in key:
            raise ValueError(f"invalid metadata key {key!r} (non-empty, no '=', no NUL/newline)")
        if "\0" in value:
            raise ValueError(f"metadata value for {key!r} contains a NUL byte")
        params += ["-metadata", f"{key}={value}"]
    return params


class VideoWriter:
    """Stream uint8 RGB frames into a video file, atomically.

    ``codec``: ``"ffv1"`` (lossless, .mkv), ``"h264"`` (libx264) or ``"h265"`` (libx265, tagged
    hvc1 in MP4). ``crf``/``preset`` apply to h264/h265. ``metadata`` become container tags
    (``-metadata key=value``; MP4 gets ``use_metadata_tags`` so arbitrary keys survive).

    Use as a context manager. Frames go to a hidden temp file next to ``path``; only a clean close
    (ffmpeg exit status 0, at least one frame) renames it onto ``path``. On an exception inside
    the ``with`` block, ffmpeg is killed, the temp file is deleted and nothing appears at ``path``.
    """

    def __init__(
        self,
        path: Path | str,
        width: int,
        height: int,
        fps: float | int | Fraction,
        codec: str = "ffv1",
        crf: int = 18,
        preset: str = "medium",
        metadata: dict[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.width = int(width)
        self.height = int(height)
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"width and height must be positive, got {width}x{height}")
        self.fps = _as_fps(fps)
        if codec not in CODECS:
            raise ValueError(f"unknown codec {codec!r}; valid: {', '.join(CODECS)}")
        self.codec = codec
        self.crf = int(crf)
        self.preset = str(preset)
        self.metadata = dict(metadata or {})
        suffix = self.path.suffix.lower()

        if codec == "ffv1":
            if suffix not in _FFV1_CONTAINERS:
                raise ValueError(f"ffv1 needs a .mkv (or .nut/.avi) path, got {self.path.name!r}")
            # ffv1 has no 8-bit gbrp; bgr0 is the lossless packed-RGB format it supports
            # (asking for gbrp silently falls back to bgr0 anyway).
            self._pix_fmt_out = "bgr0"
            self._ffmpeg_codec = "ffv1"
            params = ["-level", "3", "-g", "1"]
        else:
            if self.width % 2 or self.height % 2:
                raise ValueError(
                    f"{codec} with yuv420p needs even width and height, got {self.width}x{self.height}"
                )
            self._pix_fmt_out = "yuv420p"
            # Convert RGB -> BT.709 limited range explicitly and tag the stream, so players (and
            # our own decoder, which honours the tags) use the same matrix.
            params = [
                "-vf", "scale=out_color_matrix=bt709:out_range=tv",
                "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
                "-color_range", "tv",
                "-crf", str(self.crf), "-preset", self.preset,
            ]
            if codec == "h264":
                self._ffmpeg_codec = "libx264"
            else:
                self._ffmpeg_codec = "libx265"
                params += ["-x265-params", "log-level=error"]  # x265 logs on its own otherwise
                if suffix in _MP4_LIKE:
                    params += ["-tag:v", "hvc1"]
            if suffix in _MP4_LIKE:
                flags = "+faststart"
                if self.metadata:
                    flags += "+use_metadata_tags"
                params += ["-movflags", flags]
        self._output_params = params + _metadata_params(self.metadata)

        self._frames = 0
        self._gen = None
        self._proc: subprocess.Popen | None = None
        self._atomic = None
        self._tmp: Path | None = None
        self._state = "new"  # new -> open -> closed | aborted

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def frames_written(self) -> int:
        return self._frames

    @property
    def temp_path(self) -> Path | None:
        return self._tmp

    def open(self) -> "VideoWriter":
        if self._state != "new":
            raise RuntimeError(f"VideoWriter for {self.path} already {self._state}")
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        try:
            gen = imageio_ffmpeg.write_frames(
                str(self._tmp),
                (self.width, self.height),
                pix_fmt_in="rgb24",
                pix_fmt_out=self._pix_fmt_out,
                fps=self.fps,
                quality=None,
                codec=self._ffmpeg_codec,
                macro_block_size=1,
                ffmpeg_log_level="error",
                input_params=["-hide_banner", "-nostdin"],
                output_params=list(self._output_params),
            )
            gen.send(None)  # starts ffmpeg
            self._gen = gen
            # write_frames does not report ffmpeg's exit status; grab the Popen from the
            # generator's frame so close() can check it (None if imageio-ffmpeg changes).
            frame = getattr(gen, "gi_frame", None)
            proc = frame.f_locals.get("p") if frame is not None else None
            self._proc = proc if isinstance(proc, subprocess.Popen) else None
        except BaseException as exc:
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
            self._state = "aborted"
            raise
        self._state = "open"
        return self

    def write(self, frame: np.ndarray) -> None:
        if self._state != "open":
            raise RuntimeError(f"VideoWriter for {self.path} is not open (state: {self._state})")
        data = _check_frame(frame, self.width, self.height)
        self._gen.send(data)
        self._frames += 1

    def close(self) -> Path:
        """Finish the file and publish it at ``path``. Raises (and publishes nothing) on failure."""
        if self._state != "open":
            raise RuntimeError(f"VideoWriter for {self.path} is not open (state: {self._state})")
        try:
            self._gen.close()  # closes stdin, waits for ffmpeg
            self._gen = None
            if self._frames == 0:
                raise ValueError(f"no frames were written to {self.path}")
            if self._proc is not None:
                rc = self._proc.wait()
                if rc != 0:
                    raise RuntimeError(
                        f"ffmpeg exited with status {rc} while writing {self.path} "
                        f"(codec {self.codec}; its error is on stderr above)"
                    )
            elif not (self._tmp.exists() and self._tmp.stat().st_size > 0):
                raise RuntimeError(f"ffmpeg produced no output while writing {self.path}")
        except BaseException as exc:
            self._state = "aborted"
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._state = "closed"
        self._atomic.__exit__(None, None, None)  # fsync + rename
        return self.path

    def abort(self) -> None:
        """Stop ffmpeg and delete the temp file; nothing is published. Idempotent."""
        if self._state != "open":
            return
        self._state = "aborted"
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        try:
            if self._gen is not None:
                self._gen.close()
        except Exception:
            pass
        finally:
            self._gen = None
            if self._proc is not None:
                try:
                    self._proc.wait(timeout=10)
                except Exception:
                    pass
            err = RuntimeError("aborted")
            try:
                self._atomic.__exit__(RuntimeError, err, None)
            except RuntimeError:
                pass

    def __enter__(self) -> "VideoWriter":
        if self._state == "new":
            self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False

    def __del__(self) -> None:  # best effort: never leave a temp file behind
        try:
            if getattr(self, "_state", None) == "open":
                self.abort()
        except Exception:
            pass


def write_video(path: Path | str, frames: Iterable[np.ndarray], fps: float | int | Fraction,
                **kw) -> int:
    """Write ``frames`` (uint8 RGB HxWx3, size taken from the first) to ``path``; returns the count.

    ``kw`` go to VideoWriter (codec, crf, preset, metadata).
    """
    it = iter(frames)
    try:
        first = next(it)
    except StopIteration:
        raise ValueError(f"write_video({path}): no frames") from None
    if not isinstance(first, np.ndarray) or first.ndim != 3:
        raise ValueError(f"frames must be HxWx3 uint8 arrays, got "
                         f"{getattr(first, 'shape', type(first).__name__)}")
    height, width = first.shape[:2]
    with VideoWriter(path, width, height, fps, **kw) as writer:
        for frame in itertools.chain([first], it):
            writer.write(frame)
    return writer.frames_written


# --------------------------------------------------------------------------------------------
# Reading


def _iter_frames(path: Path, input_params: list[str] | None = None) -> Iterator[np.ndarray]:
    gen = imageio_ffmpeg.read_frames(
        str(path),
        pix_fmt="rgb24",
        input_params=list(input_params or []),
        # first video stream only; passthrough so container timestamp jitter (MKV has ms
        # timestamps) never duplicates or drops frames.
        output_params=["-map", "0:v:0", "-fps_mode", "passthrough"],
    )
    try:
        meta = next(gen)
        width, height = meta["size"]
        for raw in gen:
            yield np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3).copy()
    finally:
        gen.close()  # terminates ffmpeg if the consumer stopped early


def read_frames(path: Path | str) -> Iterator[np.ndarray]:
    """Decode ``path`` frame by frame as uint8 RGB HxWx3 arrays (streaming, bounded memory)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video not found: {path}")
    return _iter_frames(path)


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


def _run_ffmpeg(args: list[str], path: Path) -> subprocess.CompletedProcess:
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


# Codecs where every packet is exactly one whole frame: counting packets (``-c copy``) is exact
# and avoids decoding (FFV1 at 832x480 decodes at ~70 frames/s on 2 cores; copying is ~instant).
_INTRA_ONLY_CODECS = {"ffv1", "rawvideo", "png", "huffyuv", "ffvhuff", "utvideo"}


def _count_frames(path: Path, copy: bool) -> tuple[int, str]:
    args = ["-hide_banner", "-nostdin", "-nostats", "-progress", "pipe:1",
            "-i", str(path), "-map", "0:v:0"]
    if copy:
        args += ["-c", "copy"]
    proc = _run_ffmpeg(args + ["-f", "null", "-"], path)
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


def _parse_ffmetadata(text: str) -> dict[str, str]:
    """Parse the global section of an FFMETADATA1 document (backslash escapes ``=;#\\`` and
    newline; stops at the first ``[STREAM]``/``[CHAPTER]`` section)."""
    result: dict[str, str] = {}
    lines_start = True
    i, n = 0, len(text)
    if text.startswith(";FFMETADATA"):
        i = text.find("\n") + 1 if "\n" in text else n
    key: list[str] = []
    value: list[str] = []
    in_value = False
    while i < n:
        ch = text[i]
        if lines_start:
            if ch in ";#":  # comment line
                j = text.find("\n", i)
                i = n if j < 0 else j + 1
                continue
            if ch == "[":  # a section: the global part is over
                break
            if ch == "\n":
                i += 1
                continue
            lines_start = False
        if ch == "\\" and i + 1 < n:
            (value if in_value else key).append(text[i + 1])
            i += 2
            continue
        if ch == "\n":
            if in_value:
                result["".join(key)] = "".join(value)
            key, value, in_value, lines_start = [], [], False, True
            i += 1
            continue
        if ch == "=" and not in_value:
            in_value = True
        else:
            (value if in_value else key).append(ch)
        i += 1
    if in_value:
        result["".join(key)] = "".join(value)
    return result


def read_metadata(path: Path | str) -> dict[str, str]:
    """Container (global) metadata tags of ``path``. Keys are lower-cased (Matroska upper-cases
    tag names on write, MP4 keeps them; ffmpeg treats keys case-insensitively). Includes
    ffmpeg's own tags such as ``encoder`` (and ``major_brand``... for MP4)."""
    path = Path(path)
    proc = _run_ffmpeg(
        ["-hide_banner", "-nostdin", "-v", "error", "-i", str(path),
         "-vn", "-an", "-sn", "-dn", "-f", "ffmetadata", "-"],
        path,
    )
    raw = _parse_ffmetadata(proc.stdout.decode("utf-8", "replace"))
    return {k.lower(): v for k, v in raw.items()}


def _ffmetadata_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "=;#\\\n" else ch for ch in text)


def copy_with_metadata(src: Path | str, dst: Path | str, metadata: Mapping[str, str]) -> Path:
    """Copy the video `src` to `dst` (atomically) with `metadata` as its container tags, without
    re-encoding: the streams are copied bit for bit, so the decoded frames are unchanged.

    The tags travel in an FFMETADATA file rather than `-metadata key=value` arguments, so a value
    may be larger than the operating system's limit on one argument (128 KiB on Linux). MP4 gets
    `use_metadata_tags` so that keys other than the few iTunes ones survive.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise FileNotFoundError(f"video not found: {src}")
    lines = [";FFMETADATA1"]
    for key, value in metadata.items():
        _metadata_params({key: value})  # same key rules as the writer
        lines.append(f"{_ffmetadata_escape(str(key))}={_ffmetadata_escape(str(value))}")
    with atomic_path(dst) as tmp:
        meta_file = tmp.with_name(tmp.name + ".ffmeta")
        meta_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        try:
            args = ["-hide_banner", "-nostdin", "-v", "error", "-i", str(src),
                    "-f", "ffmetadata", "-i", str(meta_file),
                    "-map", "0", "-map_metadata", "1", "-c", "copy"]
            if dst.suffix.lower() in _MP4_LIKE:
                args += ["-movflags", "+faststart+use_metadata_tags"]
            _run_ffmpeg(args + [str(tmp)], src)
        finally:
            meta_file.unlink(missing_ok=True)
    return dst


def last_frame(path: Path | str) -> np.ndarray:
    """The last frame of ``path`` as uint8 RGB, keeping only the latest decoded frame in memory.

    First decodes only the final ~2 s (``-sseof``, accurate seek from the preceding keyframe);
    if that yields nothing (unknown or wrong container duration), decodes the whole stream.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video not found: {path}")
    latest: np.ndarray | None = None
    try:
        for frame in _iter_frames(path, input_params=["-sseof", "-2"]):
            latest = frame
    except (RuntimeError, OSError):
        latest = None
    if latest is None:
        for frame in _iter_frames(path):
            latest = frame
    if latest is None:
        raise ValueError(f"{path} has no decodable video frames")
    return latest


def first_frame(path: Path | str) -> np.ndarray:
    """Frame 0 of ``path`` as uint8 RGB; stops the decoder after it."""
    frames = read_frames(path)
    try:
        frame = next(frames, None)
    finally:
        frames.close()
    if frame is None:
        raise ValueError(f"{path} has no decodable video frames")
    return frame


def tail_frames(path: Path | str, count: int) -> np.ndarray:
    """The last ``count`` frames of ``path``, uint8 (count, H, W, 3), holding only those in
    memory while the clip streams past."""
    tail: deque[np.ndarray] = deque(read_frames(path), maxlen=count)
    if not tail:
        raise ValueError(f"{path} has no decodable video frames")
    return np.stack(list(tail))


# --------------------------------------------------------------------------------------------
# Single frames


def save_png(path: Path | str, frame: np.ndarray, compression: int = 3) -> Path:
    """Save a uint8 RGB HxWx3 frame as a lossless PNG, atomically. Returns the path."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 \
            or frame.shape[2] != 3:
        raise ValueError(
            f"save_png needs a uint8 HxWx3 RGB array, got "
            f"{getattr(frame, 'dtype', type(frame).__name__)} {getattr(frame, 'shape', '')}"
        )
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_PNG_COMPRESSION, int(compression)])
    if not ok:
        raise RuntimeError(f"PNG encoding failed for {path}")
    return atomic_write_bytes(Path(path), buf.tobytes())


def load_png(path: Path | str) -> np.ndarray:
    """Load an image (PNG or anything OpenCV reads) as uint8 RGB HxWx3 (gray/alpha/16-bit are
    converted)."""
    path = Path(path)
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"could not decode image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

"""Reading and writing video frame by frame, on top of the ffmpeg bundled with imageio-ffmpeg.

- Intermediates are lossless: FFV1 in MKV (``codec="ffv1"``, stored as ``bgr0`` so RGB round-trips
  bit-exactly).
- Deliverables are H.264 / H.265 in MP4 (yuv420p, limited range, tagged BT.709 primaries,
  transfer and matrix in the stream's VUI and the container: DELIVERABLE_COLOR; ``+faststart``).
- Every write is atomic (stages.media.atomic): a crashed or aborted write leaves nothing at the
  final path.
- Frames stream one at a time; memory does not grow with video length.

Neighbours: stages.media.ffmpeg (finding and running ffmpeg), stages.media.probe (video_info),
stages.media.metadata (container tags), stages.media.png (single frames).
"""

from __future__ import annotations

from collections import deque

import itertools
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import imageio_ffmpeg
import numpy as np

from stages.media.atomic import atomic_path
from stages.media.ffmpeg import MP4_LIKE, ffmpeg_exe
from stages.media.metadata import copy_with_metadata, metadata_params, read_metadata
from stages.media.png import load_png, save_png
from stages.media.probe import VideoInfo, video_info

# ffmpeg_exe, VideoInfo, video_info, read_metadata, copy_with_metadata, save_png and load_png
# live in the modules above; they are importable from here too because flows/, stages/post/ and
# the tests have always imported them from video_io.
__all__ = [
    "CODECS",
    "DELIVERABLE_COLOR",
    "VideoInfo",
    "VideoWriter",
    "write_video",
    "read_frames",
    "first_frame",
    "last_frame",
    "tail_frames",
    "video_info",
    "read_metadata",
    "copy_with_metadata",
    "save_png",
    "load_png",
    "ffmpeg_exe",
]

CODECS = ("ffv1", "h264", "h265")
_FFV1_CONTAINERS = {".mkv", ".nut", ".avi"}

# The colour description of every H.264/H.265 deliverable: BT.709 primaries, transfer and matrix,
# limited ("tv") range. It is part of the deliverable content key (stages.plan.keys), so files
# cached before a change of tags are re-encoded instead of reused.
DELIVERABLE_COLOR = {"primaries": "bt709", "transfer": "bt709", "matrix": "bt709", "range": "tv"}
# RGB -> YUV with the BT.709 matrix into limited range, then setparams stamps all four properties
# on the frames: ffmpeg takes the encoder's colour tags (x264/x265 VUI and the MP4 colr box) from
# the frames, and the scale filter alone leaves primaries and transfer "unknown" there.
_COLOR_FILTER = (
    f"scale=out_color_matrix={DELIVERABLE_COLOR['matrix']}:out_range={DELIVERABLE_COLOR['range']},"
    f"setparams=range={DELIVERABLE_COLOR['range']}"
    f":color_primaries={DELIVERABLE_COLOR['primaries']}"
    f":color_trc={DELIVERABLE_COLOR['transfer']}:colorspace={DELIVERABLE_COLOR['matrix']}"
)
_COLOR_TAGS = ["-colorspace", DELIVERABLE_COLOR["matrix"],
               "-color_primaries", DELIVERABLE_COLOR["primaries"],
               "-color_trc", DELIVERABLE_COLOR["transfer"], "-color_range", DELIVERABLE_COLOR["range"]]


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
            params = ["-vf", _COLOR_FILTER, *_COLOR_TAGS,
                      "-crf", str(self.crf), "-preset", self.preset]
            if codec == "h264":
                self._ffmpeg_codec = "libx264"
            else:
                self._ffmpeg_codec = "libx265"
                params += ["-x265-params", "log-level=error"]  # x265 logs on its own otherwise
                if suffix in MP4_LIKE:
                    params += ["-tag:v", "hvc1"]
            if suffix in MP4_LIKE:
                flags = "+faststart"
                if self.metadata:
                    flags += "+use_metadata_tags"
                params += ["-movflags", flags]
        self._output_params = params + metadata_params(self.metadata)

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

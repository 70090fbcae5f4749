"""Frame interpolation with ffmpeg's `minterpolate` filter (the ffmpeg bundled by imageio-ffmpeg).

One ffmpeg process per clip, fed raw RGB frames on stdin by a writer thread and read back raw on
stdout, so frames stream both ways and nothing is held beyond ffmpeg's own few-frame queue. The
output timing is the same exact grid as every other method (stages.post.retime.resample): frame j
at source position j·step. ffmpeg's own scene detection is off; our cut list decides instead:
positions between the two frames of a cut hold the nearer input frame, as in resample.py.
Positions that land on an input frame return that frame itself (ffmpeg's copy went through YUV and
back).

minterpolate stops short of the last input frame (it needs a frame after it), so the stream is
padded with two copies of the last frame and the output cut at the planned count.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
from fractions import Fraction
from typing import Iterable, Iterator

import numpy as np

from stages.post.retime.resample import as_fraction
from stages.post.stream import PostFrame, check_image
from stages.media.video_io import ffmpeg_exe

_PAD = 2


def minterpolate_args(width: int, height: int, src_fps: Fraction, dst_fps: Fraction) -> list[str]:
    vf = (f"format=yuv444p,minterpolate=fps={dst_fps.numerator}/{dst_fps.denominator}"
          ":mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1:scd=none")
    return [
        ffmpeg_exe(), "-hide_banner", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
        "-framerate", f"{src_fps.numerator}/{src_fps.denominator}", "-i", "pipe:0",
        "-vf", vf, "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1",
    ]


class _Feeder(threading.Thread):
    """Writes the input frames to ffmpeg and remembers what the reader needs of them."""

    def __init__(self, first: PostFrame, rest: Iterator[PostFrame], stdin, step: Fraction):
        super().__init__(daemon=True, name="minterpolate-feed")
        self.first, self.rest, self.stdin, self.step = first, rest, stdin, step
        self.shape = first.image.shape
        self.count: int | None = None  # input frames, known once the input is exhausted
        self.frames: dict[int, np.ndarray] = {}  # inputs the reader will still need
        self.cuts: set[int] = set()  # indices of frames that start a scene
        self.error: BaseException | None = None
        self.lock = threading.Lock()

    def _needed(self, i: int, cut: bool) -> bool:
        # Frame i is output as itself if some position lands on it; around a cut it is held.
        on_grid = (i / self.step).denominator == 1
        return on_grid or cut

    def run(self) -> None:
        prev = None
        i = -1
        try:
            for i, item in enumerate(self._items()):
                image = check_image(item.image, f"interpolate: frame {i}")
                if image.shape != self.shape:
                    raise ValueError(f"interpolate: frame {i} has shape {image.shape}, the "
                                     f"frames before it {self.shape}")
                with self.lock:
                    if item.cut and i > 0:
                        self.cuts.add(i)
                        self.frames[i - 1] = prev
                    if self._needed(i, item.cut and i > 0):
                        self.frames[i] = np.array(image, copy=True)
                prev = np.array(image, copy=True)
                self.stdin.write(np.ascontiguousarray(image).tobytes())
            with self.lock:
                self.count = i + 1
            for _ in range(_PAD):
                self.stdin.write(prev.tobytes())
        except BrokenPipeError:
            pass  # the reader has what it needs, or ffmpeg failed (reported by the reader)
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
            self.error = exc
        finally:
            try:
                self.stdin.close()
            except OSError:
                pass

    def _items(self) -> Iterator[PostFrame]:
        yield self.first
        yield from self.rest


def minterpolate_stream(stream: Iterable[PostFrame], src_fps: float,
                        step: Fraction) -> Iterator[PostFrame]:
    """Resample `stream` (at `src_fps`) to one frame per `step` source frames with ffmpeg."""
    it = iter(stream)
    first = next(it, None)
    if first is None:
        return
    image = check_image(first.image, "interpolate: frame 0")
    height, width = image.shape[:2]
    src = as_fraction(src_fps)
    args = minterpolate_args(width, height, src, src / step)
    frame_bytes = width * height * 3
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=errors)
        feeder = _Feeder(first, it, proc.stdin, step)
        feeder.start()
        try:
            yield from _read(proc, feeder, step, width, height, frame_bytes, errors)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            feeder.join(timeout=30)


def _read(proc, feeder: _Feeder, step: Fraction, width: int, height: int, frame_bytes: int,
          errors) -> Iterator[PostFrame]:
    half = Fraction(1, 2)
    scene = 0  # cuts at or before the current pair's first frame
    last_scene: int | None = None
    j = 0
    while True:
        pos = j * step
        i = int(pos)  # floor: positions are >= 0
        t = pos - i
        raw = proc.stdout.read(frame_bytes)
        if feeder.error is not None:
            raise feeder.error
        with feeder.lock:
            count = feeder.count
        if count is not None and pos > count - 1:
            return  # every planned frame is out; the rest is padding
        if len(raw) < frame_bytes:
            proc.wait()
            feeder.join(timeout=30)
            if feeder.error is not None:
                raise feeder.error
            errors.seek(0)
            message = errors.read().decode("utf-8", "replace").strip()[-2000:]
            raise RuntimeError(f"interpolate (minterpolate): ffmpeg stopped after {j} output "
                               f"frames (status {proc.returncode}): {message or 'no message'}")
        with feeder.lock:
            for k in sorted(k for k in feeder.cuts if k <= i):
                feeder.cuts.discard(k)
                scene += 1
            across_cut = t != 0 and (i + 1) in feeder.cuts
            if t == 0:
                held, sid = feeder.frames.get(i), scene
            elif across_cut:
                held, sid = (feeder.frames.get(i), scene) if t < half else \
                    (feeder.frames.get(i + 1), scene + 1)
            else:
                held, sid = None, scene
            for k in [k for k in feeder.frames if k < i]:
                del feeder.frames[k]  # no later position needs it
        if held is None:
            image = np.frombuffer(raw, np.uint8).reshape(height, width, 3).copy()
        else:
            image = held.copy()
        cut = feeder.first.cut if last_scene is None else sid != last_scene
        last_scene = sid
        yield PostFrame(image, cut)
        j += 1

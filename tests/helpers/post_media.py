"""Tiny synthetic media with known answers for the post-stage tests (64x48, a few frames), and
`interpolate_frames`, the plain factor-N streaming interpolator the flow tests and benchmark
measure stages.post.interpolate through."""

from __future__ import annotations

import math
import struct
import wave
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

from stages.post.interpolate import QUALITIES, interpolate_pair
from tests.helpers.synthetic import texture

H, W = 48, 64


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


_PAD = 128  # room for 64 frames of a 2 px/frame pan


@lru_cache(maxsize=16)
def _background(seed: int, h: int, w: int) -> np.ndarray:
    bg = texture(np.random.default_rng(seed), h + 2 * _PAD, w + 2 * _PAD)
    bg.setflags(write=False)
    return bg


def panning(n: int, seed: int = 0, dx: float = 2.0, dy: float = 1.0, h: int = H,
            w: int = W) -> list[np.ndarray]:
    """A textured scene panned by (dx, dy) px per frame (any real time t via `panning_at`)."""
    return [panning_at(t, seed, dx, dy, h, w) for t in range(n)]


def panning_at(t: float, seed: int = 0, dx: float = 2.0, dy: float = 1.0, h: int = H,
               w: int = W) -> np.ndarray:
    """Frame at time t of the panning scene; exact (no resampling) when t·dx, t·dy are whole."""
    pad = _PAD
    bg = _background(seed, h, w)
    ox, oy = t * dx, t * dy
    if float(ox).is_integer() and float(oy).is_integer():
        x, y = pad + int(ox), pad + int(oy)
        return bg[y:y + h, x:x + w].copy()
    m = np.float32([[1, 0, pad + ox], [0, 1, pad + oy]])
    return cv2.warpAffine(bg, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)


def moving_disc(times, d=(4, 2), seed: int = 3, size: int = 16, h: int = H,
                w: int = W) -> list[np.ndarray]:
    """A textured disc moving by d px per frame over a static textured background."""
    rng = np.random.default_rng(seed)
    bg = texture(rng, h, w)
    obj = 255 - texture(rng, size, size)
    yy, xx = np.mgrid[:size, :size]
    r = (size - 1) / 2
    mask = (yy - r) ** 2 + (xx - r) ** 2 <= r * r
    out = []
    for t in times:
        x, y = w // 8 + d[0] * t, h // 5 + d[1] * t
        assert float(x).is_integer() and float(y).is_integer()
        f = bg.copy()
        sub = f[int(y):int(y) + size, int(x):int(x) + size]
        sub[mask] = obj[mask]
        out.append(f)
    return out


def disc_box(t, d=(4, 2), size: int = 16, h: int = H, w: int = W) -> np.ndarray:
    """Mask of the square around the disc at time t (for region metrics)."""
    m = np.zeros((h, w, 3), bool)
    x, y = int(w // 8 + d[0] * t), int(h // 5 + d[1] * t)
    m[y:y + size, x:x + size] = True
    return m


def noisy(frames, sigma: float, seed: int = 7) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(f + rng.normal(0, sigma, f.shape), 0, 255).astype(np.uint8) for f in frames]


def write_wav(path: Path, seconds: float, rate: int = 16000, freq: float = 440.0) -> Path:
    """A mono 16-bit sine tone."""
    n = int(seconds * rate)
    samples = (0.4 * 32767 * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(struct.pack(f"<{n}h", *samples))
    return path


def interpolate_frames(
    frames: Iterable[np.ndarray], factor: int = 2, quality: str = "medium"
) -> Iterator[np.ndarray]:
    """Stream ``frames`` at ``factor`` times the frame rate (factor 2, 4 or 8).

    For each consecutive pair yields the first frame, then ``factor - 1`` frames at
    t = k/factor; finally the last frame. n input frames give (n-1)·factor + 1 output frames
    (0 or 1 input frames come out unchanged). Only the previous input frame is held, so memory
    does not grow with clip length. Arguments are checked at call time, not at first ``next``.
    (The render path retimes through stages.post.retime instead: cut-aware, any ratio.)
    """
    # bool is an int; factor=True would silently mean 1.
    if isinstance(factor, bool) or factor not in (2, 4, 8):
        raise ValueError(f"interpolation factor must be one of 2, 4, 8, got {factor!r}")
    if quality not in QUALITIES:
        raise ValueError(f"unknown interpolation quality {quality!r}; valid: "
                         f"{', '.join(QUALITIES)}")
    return _interpolated(iter(frames), int(factor), quality)


def _interpolated(frames: Iterator[np.ndarray], factor: int,
                  quality: str) -> Iterator[np.ndarray]:
    times = [k / factor for k in range(1, factor)]
    prev = None
    for frame in frames:
        # Copy: producers (video readers) may reuse one buffer for every frame they hand out.
        cur = np.array(frame, copy=True)
        if prev is not None:
            # Synthesise before yielding prev, so a consumer editing a yielded frame in place
            # cannot leak into the interpolated frames.
            mids = interpolate_pair(prev, cur, times, quality)
            yield prev
            yield from mids
        prev = cur
    if prev is not None:
        yield prev

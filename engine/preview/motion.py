"""The preview's moving objects: seeded soft-edged discs on smooth (Lissajous) paths, drawn
with a given opacity so they fade in (engine.preview)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .card import STREAM_OBJECTS, hsv, seeded_rng


# --------------------------------------------------------------------------------------------
# Moving objects


@dataclass(frozen=True)
class _Disc:
    cx: float  # path centre, fraction of width / height
    cy: float
    ax: float  # amplitude, fraction of width / height
    ay: float
    fx: float  # frequency, Hz at motion 1.0
    fy: float
    px: float  # phase, radians
    py: float
    radius: float  # fraction of min(W, H)
    colour: np.ndarray  # float32 (3,)
    highlight: np.ndarray  # float32 (3,)


def make_discs(seed: int) -> list[_Disc]:
    rng = seeded_rng(seed, STREAM_OBJECTS)
    n = int(rng.integers(3, 6))
    out = []
    for _ in range(n):
        colour = hsv(rng.random(), rng.uniform(0.55, 0.95), rng.uniform(0.75, 1.0))
        out.append(
            _Disc(
                cx=rng.uniform(0.25, 0.75),
                cy=rng.uniform(0.25, 0.75),
                ax=rng.uniform(0.1, 0.22),
                ay=rng.uniform(0.1, 0.22),
                fx=rng.uniform(0.08, 0.22) * rng.choice([-1.0, 1.0]),
                fy=rng.uniform(0.08, 0.22) * rng.choice([-1.0, 1.0]),
                px=rng.uniform(0, 2 * math.pi),
                py=rng.uniform(0, 2 * math.pi),
                radius=rng.uniform(0.06, 0.11),
                colour=colour,
                highlight=(colour * 0.45 + 255.0 * 0.55).astype(np.float32),
            )
        )
    return out


def _draw_soft_disc(
    img: np.ndarray, x: float, y: float, r: float, colour: np.ndarray, opacity: float
) -> None:
    """Alpha-blend a disc with a soft edge (width ~r/4) at sub-pixel (x, y) into uint8 img."""
    h, w = img.shape[:2]
    soft = max(1.0, 0.25 * r)
    reach = r + soft
    x0, x1 = max(int(math.floor(x - reach)), 0), min(int(math.ceil(x + reach)) + 1, w)
    y0, y1 = max(int(math.floor(y - reach)), 0), min(int(math.ceil(y + reach)) + 1, h)
    if x0 >= x1 or y0 >= y1:
        return
    dx = np.arange(x0, x1, dtype=np.float32) - np.float32(x)
    dy = np.arange(y0, y1, dtype=np.float32) - np.float32(y)
    d = np.sqrt(dx[None, :] ** 2 + dy[:, None] ** 2)
    a = np.clip((np.float32(r) - d) / np.float32(soft) + 0.5, 0.0, 1.0) * np.float32(opacity)
    a = a[:, :, None]
    roi = img[y0:y1, x0:x1]
    roi[...] = np.clip(np.rint(roi.astype(np.float32) * (1.0 - a) + colour * a), 0, 255).astype(
        np.uint8
    )


def draw_discs(
    img: np.ndarray, discs: Sequence[_Disc], t: float, motion: float, opacity: float
) -> None:
    h, w = img.shape[:2]
    m = min(w, h)
    tau = 2.0 * math.pi * t * motion
    for d in discs:
        x = w * (d.cx + d.ax * math.sin(d.fx * tau + d.px))
        y = h * (d.cy + d.ay * math.sin(d.fy * tau + d.py))
        r = d.radius * m
        _draw_soft_disc(img, x, y, r, d.colour, opacity)
        _draw_soft_disc(img, x - 0.3 * r, y - 0.3 * r, 0.4 * r, d.highlight, opacity)

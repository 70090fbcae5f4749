"""Synthetic soundtracks with beats at placed times (kick-drum-like bursts), written as WAV."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile

RATE = 22050


def kick_track(path: Path, beats: Sequence[float], seconds: float,
               hat_every: float | None = None) -> Path:
    """A WAV of `seconds` with a 60 Hz kick (fast decay) at each beat time; optional quiet
    treble ticks between them."""
    y = np.zeros(int(seconds * RATE), np.float32)
    n = int(0.4 * RATE)  # long enough to fade out: no click where it ends
    t = np.arange(n) / RATE
    kick = (np.sin(2 * np.pi * 60 * t * (1 + 2 * np.exp(-t * 30))) * np.exp(-t * 25)).astype(
        np.float32)
    for b in beats:
        i = int(round(b * RATE))
        end = min(len(y), i + n)
        y[i:end] += 0.9 * kick[:end - i]
    if hat_every:
        rng = np.random.default_rng(0)
        m = int(0.02 * RATE)
        for h in np.arange(hat_every / 2, seconds, hat_every):
            i = int(h * RATE)
            y[i:i + m] += (0.05 * rng.standard_normal(min(m, len(y) - i))).astype(np.float32)
    soundfile.write(str(path), y, RATE, subtype="PCM_16")
    return path

"""Engines side by side: one labelled video of several renders of the same storyboard, and a
table of wall time per segment for each.

The videos play in sync by time (each at its own frame rate, sampled at the output's), scaled to
a common height, each under a label band; a shorter one holds its last frame. Frames stream one
at a time, so memory does not grow with length.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import cv2
import numpy as np

from stages.media.probe import video_info
from stages.media.video_io import VideoWriter, read_frames

LABEL_BAND = 28


@dataclass(frozen=True)
class Variant:
    label: str      # what the render was (e.g. "engine=wan21_t2v")
    video: Path
    manifest: dict[str, Any]


def _labelled(frame: np.ndarray, label: str, width: int, height: int) -> np.ndarray:
    scaled = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    band = np.full((LABEL_BAND, width, 3), 24, np.uint8)
    cv2.putText(band, label[:60], (6, LABEL_BAND - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                (240, 240, 240), 1, cv2.LINE_AA)
    return np.vstack([band, scaled])


class _Sampler:
    """Frames of one video by time: holds the frame shown at the requested time."""

    def __init__(self, path: Path):
        info = video_info(path)
        self.fps, self.count = info.fps, info.frames
        self.width, self.height = info.width, info.height
        self._frames: Iterator[np.ndarray] = read_frames(path)
        self._index = -1
        self._frame: np.ndarray | None = None

    def at(self, t: float) -> np.ndarray:
        wanted = min(int(t * self.fps + 1e-6), self.count - 1)
        while self._index < wanted:
            nxt = next(self._frames, None)
            if nxt is None:
                break
            self._frame, self._index = nxt, self._index + 1
        assert self._frame is not None
        return self._frame


def side_by_side(variants: Sequence[Variant], out: Path, height: int = 240,
                 fps: float | None = None) -> Path:
    """Write the variants next to each other into `out` (H.264)."""
    if not variants:
        raise ValueError("nothing to compare: no rendered variants")
    samplers = [_Sampler(v.video) for v in variants]
    fps = fps or max(s.fps for s in samplers)
    height -= height % 2
    widths = [max(2, round(s.width * height / s.height) // 2 * 2) for s in samplers]
    duration = max(s.count / s.fps for s in samplers)
    total = max(1, round(duration * fps))
    with VideoWriter(out, sum(widths), height + LABEL_BAND, fps, codec="h264") as writer:
        for i in range(total):
            t = i / fps
            writer.write(np.hstack([_labelled(s.at(t), v.label, w, height)
                                    for s, v, w in zip(samplers, variants, widths)]))
    return out


def timing_table(variants: Sequence[Variant]) -> str:
    """Markdown: a row per segment, a column per variant with its wall seconds (or 'cached'),
    and a total row."""
    rows: dict[str, list[str]] = {}
    totals = []
    for col, variant in enumerate(variants):
        total = 0.0
        for shot in variant.manifest.get("shots", []):
            for seg in shot.get("segments", []):
                label = f"{shot['id']}_{seg['index']}"
                cells = rows.setdefault(label, [""] * len(variants))
                if seg.get("cached"):
                    cells[col] = "cached"
                else:
                    cells[col] = f"{seg.get('seconds', 0.0):.2f}"
                    total += float(seg.get("seconds", 0.0))
        totals.append(f"{total:.2f}")
    header = "| segment | " + " | ".join(v.label for v in variants) + " |"
    rule = "|---|" + "---:|" * len(variants)
    body = [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows.items()]
    return "\n".join([header, rule, *body, "| **total rendered (s)** | " + " | ".join(totals)
                      + " |"]) + "\n"

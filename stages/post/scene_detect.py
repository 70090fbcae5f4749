"""Scene cut detection: marks the first frame of every new scene in the frame stream.

Score of a pair of consecutive frames, in [0, 1], the larger of:
- colour: Bhattacharyya distance of their HSV histograms (a cut to a differently lit or coloured
  scene); motion inside a scene barely changes a histogram.
- layout: 1 - the best normalised correlation of tiny (32 px wide) blurred gray thumbnails over
  shifts of up to 3 thumbnail pixels (a cut between scenes of the same palette). The shift search
  absorbs pans and fast camera moves (up to ~10% of the frame width per frame), which otherwise
  decorrelate textured content; a cut replaces the layout, so no shift matches it. Ignored when
  either thumbnail is nearly flat (correlation is meaningless there; the histogram decides).
A pair scoring at least `threshold` is a cut. 0.4 catches hard cuts between unrelated shots and
ignores fast pans; lower it for cuts between similar shots, raise it for footage with flashes.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Mapping

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from stages.post.registry import register
from stages.post.stream import PostFrame, check_image

THUMB_WIDTH = 32
HIST_WIDTH = 128
# Gray-level standard deviation below which a thumbnail counts as flat.
FLAT_STD = 3.0
MAX_SHIFT = 3  # thumbnail pixels searched each way


class SceneDetectParams(BaseModel):
    """Marks scene cuts so that later temporal stages never blend across them."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)
    threshold: float = Field(0.4, ge=0.2, le=0.7)
    """Histogram and layout distance above which a frame starts a new scene (0.2 finds more cuts, 0.7 fewer)."""


class _Signature:
    __slots__ = ("hist", "thumb", "flat")

    def __init__(self, image: np.ndarray):
        h, w = image.shape[:2]
        small = cv2.resize(image, (HIST_WIDTH, max(1, round(h * HIST_WIDTH / w))),
                           interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
        hist = cv2.calcHist([hsv], [0, 1, 2], None, [16, 4, 4], [0, 180, 0, 256, 0, 256])
        self.hist = cv2.normalize(hist, None, 1.0, 0.0, cv2.NORM_L1)
        g = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        thumb = cv2.resize(g, (THUMB_WIDTH, max(1, round(h * THUMB_WIDTH / w))),
                           interpolation=cv2.INTER_AREA).astype(np.float32)
        thumb = cv2.GaussianBlur(thumb, (3, 3), 0)
        std = float(thumb.std())
        self.flat = std < FLAT_STD
        self.thumb = (thumb - thumb.mean()) / (std + 1e-6)


def _best_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Highest normalised correlation of the overlapping parts of a and b over small shifts."""
    h, w = a.shape
    best = -1.0
    for dy in range(-MAX_SHIFT, MAX_SHIFT + 1):
        for dx in range(-MAX_SHIFT, MAX_SHIFT + 1):
            pa = a[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)]
            pb = b[max(0, -dy):h + min(0, -dy), max(0, -dx):w + min(0, -dx)]
            if pa.size < 0.5 * a.size:
                continue
            pa = pa - pa.mean()
            pb = pb - pb.mean()
            denom = float(np.sqrt((pa * pa).sum() * (pb * pb).sum()))
            if denom > 1e-6:
                best = max(best, float((pa * pb).sum()) / denom)
    return best


def cut_score(a: _Signature, b: _Signature) -> float:
    colour = float(cv2.compareHist(a.hist, b.hist, cv2.HISTCMP_BHATTACHARYYA))
    layout = 0.0
    if not (a.flat or b.flat) and a.thumb.shape == b.thumb.shape:
        layout = 1.0 - _best_correlation(a.thumb, b.thumb)
    return float(np.clip(max(colour, layout), 0.0, 1.0))


def frame_scores(frames: Iterable[np.ndarray]) -> Iterator[float]:
    """Cut score of each frame against the one before (the first frame scores 0)."""
    prev = None
    for i, frame in enumerate(frames):
        sig = _Signature(check_image(frame, f"scene_detect: frame {i}"))
        yield 0.0 if prev is None else cut_score(prev, sig)
        prev = sig


def detect_cuts(stream: Iterable[PostFrame], threshold: float = 0.4) -> Iterator[PostFrame]:
    """Pass frames through, setting `cut` on each frame that starts a new scene (cuts already
    marked upstream are kept). Holds one frame's signature, never frames."""
    prev = None
    for i, item in enumerate(stream):
        sig = _Signature(check_image(item.image, f"scene_detect: frame {i}"))
        cut = item.cut or (prev is not None and cut_score(prev, sig) >= threshold)
        prev = sig
        yield PostFrame(item.image, cut)


def cut_list(frames: Iterable[np.ndarray], threshold: float = 0.4) -> list[int]:
    """Indices of the frames that start a new scene (for reports and tests)."""
    stream = (PostFrame(f) for f in frames)
    return [i for i, item in enumerate(detect_cuts(stream, threshold)) if item.cut and i > 0]


def _run(stream: Iterator[PostFrame], fps: float, params: SceneDetectParams,
         digests: Mapping[str, str]) -> Iterator[PostFrame]:
    return detect_cuts(stream, params.threshold)


register("scene_detect", SceneDetectParams, _run, marks_cuts=True)

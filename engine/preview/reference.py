"""The preview's cast reference: the first of a request's reference images, shown as an inset of
known size and place on every frame and still, drawn last (over the camera warp, the caption and
the end image), so that identity conditioning is visible in an animatic and a test can score it:
the inset's pixels are `reference_inset(image, W, H)` exactly, at `reference_box(W, H)`.

Requests without references are untouched: their pixels (and so their cache keys, which hold
the preview's REVISION) are what they were before references existed.
"""

from __future__ import annotations

import numpy as np

from ..images import cover_resize


def reference_box(width: int, height: int) -> tuple[int, int, int]:
    """(top, left, side) of the square inset in a width x height frame: a quarter of the short
    side, a small margin from the top-right corner (clear of the card's centred title)."""
    short = min(width, height)
    side = max(4, short // 4)
    margin = max(1, short // 32)
    return margin, max(0, width - side - margin), min(side, short)


def reference_inset(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """The reference cover-resized (centre crop) to the inset's square, uint8 (side, side, 3)."""
    side = reference_box(width, height)[2]
    return cover_resize(image, side, side)


def draw_reference(frame: np.ndarray, inset: np.ndarray) -> None:
    """Put the inset into `frame` (H, W, 3) in place, at reference_box."""
    height, width = frame.shape[:2]
    top, left, side = reference_box(width, height)
    frame[top:top + side, left:left + side] = inset

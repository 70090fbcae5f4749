"""Contact sheet: one row per shot, a label cell with the shot id, then evenly sampled thumbnails."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["contact_sheet", "sample_indices"]

BACKGROUND = (24, 24, 26)
LABEL_BACKGROUND = (40, 40, 44)
TEXT_COLOR = (235, 235, 235)
GAP = 4


def sample_indices(n_frames: int, count: int) -> list[int]:
    """``count`` evenly spaced indices into ``n_frames`` frames, including the first and the last
    (all indices when ``count >= n_frames``; ``[0]`` when ``count == 1``; ``[]`` when empty)."""
    n_frames = int(n_frames)
    count = int(count)
    if n_frames <= 0 or count <= 0:
        return []
    if count >= n_frames:
        return list(range(n_frames))
    if count == 1:
        return [0]
    # floor(x + 0.5): distinct and increasing because the step (n-1)/(count-1) >= 1
    return [int(i * (n_frames - 1) / (count - 1) + 0.5) for i in range(count)]


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # old Pillow or no FreeType: bitmap font
        return ImageFont.load_default()


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> list[str]:
    """Greedy character wrap (shot ids have no spaces)."""
    lines: list[str] = []
    current = ""
    for ch in text:
        if current and draw.textlength(current + ch, font=font) > width:
            lines.append(current)
            current = ch
        else:
            current += ch
    if current:
        lines.append(current)
    return lines or [""]


def _to_rgb(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise ValueError(f"contact_sheet frames must be uint8, got {frame.dtype}")
    if frame.ndim == 2:
        return np.repeat(frame[:, :, None], 3, axis=2)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 4:
        return frame[:, :, :3]
    raise ValueError(f"contact_sheet frames must be HxW, HxWx3 or HxWx4, got {frame.shape}")


def thumbnail(frame: np.ndarray, thumb_width: int) -> np.ndarray:
    """`frame` scaled to `thumb_width` pixels wide, aspect preserved."""
    h, w = frame.shape[:2]
    th = max(1, int(round(thumb_width * h / w)))
    interp = cv2.INTER_AREA if w > thumb_width else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(frame), (thumb_width, th), interpolation=interp)


def contact_sheet(
    rows: Sequence[tuple[str, Sequence[np.ndarray]]],
    thumb_width: int = 192,
    columns: int = 6,
    label_width: int | None = None,
) -> np.ndarray:
    """Build a contact sheet: for each ``(shot_id, frames)`` row, a label cell with the id, then up
    to ``columns`` thumbnails ``thumb_width`` wide (aspect preserved). If a row has more frames
    than ``columns`` they are evenly sampled (first and last kept). Dark background, small gaps.
    Returns a uint8 RGB array.
    """
    thumb_width = int(thumb_width)
    columns = int(columns)
    if thumb_width < 8:
        raise ValueError(f"thumb_width must be >= 8, got {thumb_width}")
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    if label_width is None:
        label_width = max(64, thumb_width // 2)
    font_size = max(10, min(24, thumb_width // 10))
    font = _font(font_size)
    line_height = font_size + 4

    # Thumbnails per row, and each row's height.
    prepared: list[tuple[str, list[np.ndarray], int]] = []
    for label, frames in rows:
        frames = list(frames)
        if len(frames) > columns:
            frames = [frames[i] for i in sample_indices(len(frames), columns)]
        thumbs = [thumbnail(_to_rgb(f), thumb_width) for f in frames]
        height = max((t.shape[0] for t in thumbs), default=int(round(thumb_width * 9 / 16)))
        prepared.append((str(label), thumbs, max(height, line_height + 2 * GAP)))

    width = GAP + label_width + columns * (GAP + thumb_width) + GAP
    total_h = GAP + sum(h + GAP for _, _, h in prepared) if prepared else 2 * GAP + line_height
    sheet = Image.new("RGB", (width, total_h), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    canvas = np.zeros((total_h, width, 3), np.uint8)  # thumbnails pasted after the text pass

    y = GAP
    pastes: list[tuple[int, int, np.ndarray]] = []
    for label, thumbs, row_h in prepared:
        draw.rectangle([GAP, y, GAP + label_width - 1, y + row_h - 1], fill=LABEL_BACKGROUND)
        lines = _wrap(draw, label, font, label_width - 2 * GAP)
        max_lines = max(1, (row_h - 2 * GAP) // line_height)
        lines = lines[:max_lines]
        ty = y + max(GAP, (row_h - len(lines) * line_height) // 2)
        for line in lines:
            draw.text((2 * GAP, ty), line, fill=TEXT_COLOR, font=font)
            ty += line_height
        x = GAP + label_width + GAP
        for t in thumbs:
            oy = y + (row_h - t.shape[0]) // 2
            pastes.append((oy, x, t))
            x += thumb_width + GAP
        y += row_h + GAP

    canvas[:] = np.asarray(sheet, dtype=np.uint8)
    for oy, ox, t in pastes:
        canvas[oy:oy + t.shape[0], ox:ox + t.shape[1]] = t
    return canvas

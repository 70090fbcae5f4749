"""The preview's drawing: seeded colours, the scene card (gradient, grid, dots, the shot id and
the wrapped prompt) and the caption band, all deterministic for a seed (engine.preview)."""

from __future__ import annotations

import colorsys
import functools
import unicodedata
from dataclasses import dataclass

import cv2
import numpy as np

_SEED_MASK = (1 << 64) - 1
# Independent random streams derived from the seed.
_STREAM_BACKGROUND = 0
STREAM_OBJECTS = 1


def seeded_rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed) & _SEED_MASK, stream]))


# --------------------------------------------------------------------------------------------
# Text


@functools.lru_cache(maxsize=32)
def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow < 10.1 or no FreeType: bitmap font
        return ImageFont.load_default()


def _clean_text(text: str) -> str:
    """Control and format characters become spaces; runs of whitespace collapse."""
    out = []
    for ch in str(text):
        cat = unicodedata.category(ch)
        out.append(" " if cat.startswith(("C", "Z")) else ch)
    return " ".join("".join(out).split())


def _ascii_fallback(text: str) -> str:
    return "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)


def _text_length(font, text: str) -> float:
    try:
        return float(font.getlength(text))
    except (UnicodeError, OSError, ValueError):
        return float(font.getlength(_ascii_fallback(text)))


def _draw_text(draw, xy, text: str, font, fill, shadow=None, shadow_offset: int = 1) -> None:
    """Draw text, with an optional drop shadow; characters a font cannot encode never raise."""
    for candidate in (text, _ascii_fallback(text)):
        try:
            if shadow is not None:
                sx, sy = xy[0] + shadow_offset, xy[1] + shadow_offset
                draw.text((sx, sy), candidate, font=font, fill=shadow)
            draw.text(xy, candidate, font=font, fill=fill)
            return
        except (UnicodeError, OSError, ValueError):
            continue


def _fit_line(font, text: str, max_width: float) -> str:
    """`text` truncated with an ellipsis so that it fits `max_width` pixels."""
    if _text_length(font, text) <= max_width:
        return text
    ell = "..."
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _text_length(font, text[:mid].rstrip() + ell) <= max_width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + ell


def _wrap(font, text: str, max_width: float, max_lines: int) -> list[str]:
    """Greedy word wrap to `max_width` pixels; long words are broken; the last line ellipsised."""
    words = text.split()
    lines: list[str] = []
    current = ""
    i = 0
    while i < len(words):
        word = words[i]
        trial = f"{current} {word}" if current else word
        if _text_length(font, trial) <= max_width:
            current = trial
            i += 1
            continue
        if not current:  # a single word wider than the line: break it
            lo, hi = 1, len(word) - 1  # longest prefix that fits (at least one character)
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if _text_length(font, word[:mid]) <= max_width:
                    lo = mid
                else:
                    hi = mid - 1
            cut = lo
            lines.append(word[:cut])
            words[i] = word[cut:]
        else:
            lines.append(current)
            current = ""
        if len(lines) == max_lines:
            break
    else:
        if current:
            lines.append(current)
        return lines[:max_lines]
    # Ran out of lines with text left over.
    rest = " ".join([current] + words[i:]).strip() if current else " ".join(words[i:])
    if rest and lines:
        lines[-1] = _fit_line(font, lines[-1] + " " + rest, max_width)
    return lines


# --------------------------------------------------------------------------------------------
# The scene card


def hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * 255.0


def _background(width: int, height: int, seed: int) -> np.ndarray:
    """Seeded gradient with a grid and scattered dots, uint8 (H, W, 3)."""
    rng = seeded_rng(seed, _STREAM_BACKGROUND)
    base_hue = rng.random()
    corners = [
        hsv(base_hue + rng.uniform(-0.12, 0.12), rng.uniform(0.35, 0.7), rng.uniform(0.3, 0.62))
        for _ in range(4)
    ]
    u = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    v = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    img = (
        (1 - v) * ((1 - u) * corners[0] + u * corners[1])
        + v * ((1 - u) * corners[2] + u * corners[3])
    ).astype(np.float32)

    # Grid: thin light lines every `cell` pixels with a seeded phase.
    cell = max(8, int(round(min(width, height) / 8)))
    ox, oy = int(rng.integers(0, cell)), int(rng.integers(0, cell))
    img[:, ox::cell] += 18.0
    img[oy::cell, :] += 18.0

    # Scattered dots, light and dark, anti-aliased into two masks.
    n_dots = max(8, (width * height) // 1500)
    xs = rng.uniform(0, width, n_dots)
    ys = rng.uniform(0, height, n_dots)
    radii = rng.uniform(0.8, max(1.5, min(width, height) / 120), n_dots)
    light = rng.random(n_dots) < 0.5
    masks = [np.zeros((height, width), np.uint8), np.zeros((height, width), np.uint8)]
    shift = 4  # sub-pixel positions
    for x, y, r, is_light in zip(xs, ys, radii, light):
        cv2.circle(
            masks[0 if is_light else 1],
            (int(round(x * (1 << shift))), int(round(y * (1 << shift)))),
            max(1, int(round(r * (1 << shift)))),
            255,
            thickness=-1,
            lineType=cv2.LINE_AA,
            shift=shift,
        )
    img += masks[0][:, :, None].astype(np.float32) * (55.0 / 255.0)
    img -= masks[1][:, :, None].astype(np.float32) * (45.0 / 255.0)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def render_scene_card(
    width: int, height: int, seed: int, shot_id: str, prompt: str, segment_index: int = 0
) -> np.ndarray:
    """The preview's world without a start image: uint8 RGB (height, width, 3)."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(_background(width, height, seed))
    draw = ImageDraw.Draw(img)
    margin = max(4, int(round(width * 0.06)))
    max_w = width - 2 * margin

    title = _clean_text(shot_id) or "shot"
    if segment_index:
        title = f"{title} / {segment_index}"
    title_size = max(10, int(round(height * 0.17)))
    title_font = _font(title_size)
    title = _fit_line(title_font, title, max_w)
    tw = _text_length(title_font, title)
    title_y = int(round(height * 0.14))
    shadow_off = max(1, title_size // 18)
    _draw_text(
        draw,
        (int(round((width - tw) / 2)), title_y),
        title,
        title_font,
        fill=(255, 255, 255),
        shadow=(0, 0, 0),
        shadow_offset=shadow_off,
    )

    body_size = max(8, int(round(height * 0.055)))
    body_font = _font(body_size)
    line_h = int(round(body_size * 1.3))
    top = title_y + int(round(title_size * 1.45))
    max_lines = max(1, (height - margin // 2 - top) // max(1, line_h))
    lines = _wrap(body_font, _clean_text(prompt), max_w, max_lines)
    for k, line in enumerate(lines):
        lw = _text_length(body_font, line)
        _draw_text(
            draw,
            (int(round((width - lw) / 2)), top + k * line_h),
            line,
            body_font,
            fill=(255, 255, 255),
            shadow=(0, 0, 0),
            shadow_offset=max(1, body_size // 16),
        )
    return np.asarray(img, dtype=np.uint8).copy()


@dataclass(frozen=True)
class _Caption:
    top: int
    alpha: np.ndarray  # (h, W, 1) float32 in [0, 1]
    premult: np.ndarray  # (h, W, 3) float32: colour * alpha


def caption_layer(width: int, height: int, prompt: str) -> _Caption | None:
    text = _clean_text(prompt)
    if not text:
        return None
    from PIL import Image, ImageDraw

    band = max(12, int(round(height * 0.1)))
    size = max(8, int(round(band * 0.5)))
    font = _font(size)
    layer = Image.new("RGBA", (width, band), (0, 0, 0, 110))
    draw = ImageDraw.Draw(layer)
    pad = max(4, int(round(width * 0.03)))
    line = _fit_line(font, text, width - 2 * pad)
    lw = _text_length(font, line)
    _draw_text(
        draw, (int(round((width - lw) / 2)), (band - size) // 2), line, font, (255, 255, 255, 255)
    )
    rgba = np.asarray(layer, dtype=np.float32)
    alpha = rgba[:, :, 3:4] / 255.0
    return _Caption(top=height - band, alpha=alpha, premult=rgba[:, :, :3] * alpha)


def apply_caption(frame: np.ndarray, cap: _Caption, opacity: float) -> None:
    roi = frame[cap.top :]
    a = cap.alpha * np.float32(opacity)
    blended = roi.astype(np.float32) * (1.0 - a) + cap.premult * np.float32(opacity)
    roi[...] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)

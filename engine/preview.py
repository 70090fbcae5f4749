"""The embedded `preview` engine: a deterministic CPU animatic renderer that needs no weights.

What one request renders, frame i of T (all in this order):

1. The world: the start image (cover-resized to W x H if needed) or, without one, a scene card:
   a seeded smooth colour gradient with a grid and scattered dots (so camera moves are visible),
   the shot id in large type and the prompt wrapped below it.
2. Motion: a few seeded soft-edged discs move along seeded smooth (Lissajous) paths in world
   coordinates, at a speed scaled by `params["motion"]` (default 1.0; 0 = no discs). Their
   opacity ramps linearly from 0 at frame 0 to full at frame `FADE_FRAMES`, so frame 0 is the
   start image exactly.
3. Camera: the world (with discs) is warped by relative_homography(camera[i], camera[0]) (see
   engine.geometry), bilinear with reflected borders. No camera = a static view.
4. Caption: with a start image (or `params["caption"] = True`), the segment prompt is shown in a
   band at the bottom of the screen, opacity min(1, 2 sin(pi i / (T - 1))), exactly 0 at the
   first and last frames. `params["caption"] = False` turns it off.
5. End image: the frames blend towards it with a smoothstep weight over the second half of the
   segment; the last frame is the end image exactly.

Same request, same pixels: every random choice comes from numpy Generators seeded from
request.seed (the background and the discs use separate streams). `REVISION` changes whenever the
output pixels for some request would change, because it goes into every cache key.
"""

from __future__ import annotations

import colorsys
import functools
import math
import unicodedata
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from .base import (
    CameraState,
    Engine,
    EngineError,
    EngineSpec,
    FrameRule,
    GenerationRequest,
    ProgressFn,
)
from .geometry import is_identity_homography, relative_homography, warp_frame
from .images import ImageLoadError, cover_resize

__all__ = ["PREVIEW_SPEC", "REVISION", "FADE_FRAMES", "PreviewEngine", "render_scene_card"]

# Bump when the pixels of any request change (drawing, motion, blending, resizing).
REVISION = "preview-1"

PREVIEW_SPEC = EngineSpec(
    name="preview",
    frame_rule=FrameRule(step=4, offset=1, minimum=5),
    resolution_multiple=16,
    default_fps=16,
    default_resolution=(832, 480),
    max_frames=81,
    modes=frozenset({"t2v", "i2v", "flf2v"}),
    draws_labels=True,
)

# Frames over which the moving discs fade in (frame 0: invisible; frame FADE_FRAMES: opaque).
FADE_FRAMES = 4

_KNOWN_PARAMS = ("motion", "caption")
_SEED_MASK = (1 << 64) - 1
# Independent random streams derived from the seed.
_STREAM_BACKGROUND = 0
_STREAM_OBJECTS = 1


def _rng(seed: int, stream: int) -> np.random.Generator:
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


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * 255.0


def _background(width: int, height: int, seed: int) -> np.ndarray:
    """Seeded gradient with a grid and scattered dots, uint8 (H, W, 3)."""
    rng = _rng(seed, _STREAM_BACKGROUND)
    base_hue = rng.random()
    corners = [
        _hsv(base_hue + rng.uniform(-0.12, 0.12), rng.uniform(0.35, 0.7), rng.uniform(0.3, 0.62))
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


def _caption_layer(width: int, height: int, prompt: str) -> _Caption | None:
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


def _apply_caption(frame: np.ndarray, cap: _Caption, opacity: float) -> None:
    roi = frame[cap.top :]
    a = cap.alpha * np.float32(opacity)
    blended = roi.astype(np.float32) * (1.0 - a) + cap.premult * np.float32(opacity)
    roi[...] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)


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


def _discs(seed: int) -> list[_Disc]:
    rng = _rng(seed, _STREAM_OBJECTS)
    n = int(rng.integers(3, 6))
    out = []
    for _ in range(n):
        colour = _hsv(rng.random(), rng.uniform(0.55, 0.95), rng.uniform(0.75, 1.0))
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


def _draw_discs(
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


# --------------------------------------------------------------------------------------------
# The engine


def _smoothstep(x: float) -> float:
    x = min(1.0, max(0.0, x))
    return x * x * (3.0 - 2.0 * x)


class PreviewEngine(Engine):
    """Deterministic CPU animatic renderer (see the module docstring). Takes no options."""

    spec = PREVIEW_SPEC

    def __init__(self, **options: Any) -> None:
        if options:
            raise TypeError(
                f"the preview engine takes no options, got {sorted(options)}; per-request "
                f"settings go in GenerationRequest.params ({', '.join(_KNOWN_PARAMS)})"
            )

    def identity(self) -> dict[str, Any]:
        return {"engine": "preview", "revision": REVISION}

    def check_params(self, params: Mapping[str, Any]) -> list[str]:
        problems = []
        motion = params.get("motion", 1.0)
        if (
            isinstance(motion, bool)
            or not isinstance(motion, (int, float, np.integer, np.floating))
            or not math.isfinite(float(motion))
            or motion < 0
        ):
            problems.append(f"motion={motion!r}: must be a finite number >= 0")
        caption = params.get("caption", None)
        if caption is not None and not isinstance(caption, (bool, np.bool_)):
            problems.append(f"caption={caption!r}: must be true, false or absent")
        return problems

    # -- validation ---------------------------------------------------------------------------

    def _fit_image(self, image: Any, what: str, width: int, height: int) -> np.ndarray:
        if not isinstance(image, np.ndarray):
            raise EngineError(
                f"{what} must be a numpy uint8 RGB array of shape (H, W, 3), "
                f"got {type(image).__name__}"
            )
        if image.dtype != np.uint8:
            raise EngineError(
                f"{what} has dtype {image.dtype}; expected uint8 RGB of shape (H, W, 3)"
            )
        if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
            raise EngineError(
                f"{what} has shape {image.shape}; expected uint8 RGB of shape (H, W, 3)"
            )
        try:
            fitted = cover_resize(image, width, height)
        except (ImageLoadError, ValueError, cv2.error) as exc:
            raise EngineError(f"{what} could not be resized to {width}x{height}: {exc}") from exc
        if fitted.shape != (height, width, 3) or fitted.dtype != np.uint8:
            raise EngineError(
                f"{what} has shape {fitted.shape} after resizing; expected {(height, width, 3)}"
            )
        return fitted

    def _validate(self, req: GenerationRequest) -> tuple:
        spec = self.spec
        mult = spec.resolution_multiple
        for name in ("width", "height"):
            value = getattr(req, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise EngineError(f"{name}={value!r} must be a positive integer multiple of {mult}")
            if value % mult:
                lower = max(mult, value // mult * mult)
                raise EngineError(
                    f"{name}={value} is not a multiple of {mult} "
                    f"(nearest valid: {lower} or {lower + mult})"
                )
        width, height = int(req.width), int(req.height)

        n = req.num_frames
        rule = spec.frame_rule
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise EngineError(f"num_frames={n!r} must be an integer ({rule.describe()})")
        n = int(n)
        if not rule.is_valid(n):
            raise EngineError(
                f"num_frames={n} is not valid for the {spec.name} engine: frame counts must be "
                f"{rule.describe()} and at least {rule.minimum} (nearest valid: "
                f"{min(rule.snap(n), spec.max_frames)})"
            )
        if n > spec.max_frames:
            raise EngineError(
                f"num_frames={n} exceeds the {spec.name} engine's max_frames={spec.max_frames}; "
                "split the shot into chained segments"
            )
        if isinstance(req.fps, bool) or not isinstance(req.fps, (int, np.integer)) or req.fps <= 0:
            raise EngineError(f"fps={req.fps!r} must be a positive integer")
        if req.mode not in spec.modes:
            raise EngineError(f"mode {req.mode!r} is not supported; valid: {sorted(spec.modes)}")
        if isinstance(req.seed, bool) or not isinstance(req.seed, (int, np.integer)):
            raise EngineError(f"seed={req.seed!r} must be an integer")
        if not isinstance(req.prompt, str):
            raise EngineError(f"prompt must be a string, got {type(req.prompt).__name__}")

        camera = list(req.camera or ())
        if camera and len(camera) != n:
            raise EngineError(
                f"camera has {len(camera)} states but num_frames={n}: give exactly one "
                "CameraState per frame, or none for a static camera"
            )
        for i, state in enumerate(camera):
            if not isinstance(state, CameraState):
                raise EngineError(
                    f"camera[{i}] is a {type(state).__name__}, expected a CameraState"
                )

        params = dict(req.params or {})
        problems = self.check_params(params)
        if problems:
            raise EngineError(f"params.{problems[0]}")
        motion = params.get("motion", 1.0)
        caption = params.get("caption", None)

        start = end = None
        if req.start_image is not None:
            start = self._fit_image(req.start_image, "start_image", width, height)
        if req.end_image is not None:
            end = self._fit_image(req.end_image, "end_image", width, height)

        homs: list[np.ndarray] | None = None
        if camera:
            try:
                homs = [relative_homography(s, camera[0], width, height) for s in camera]
            except ValueError as exc:
                raise EngineError(f"invalid camera path: {exc}") from exc
            if all(is_identity_homography(h) for h in homs):
                homs = None
        show_caption = (start is not None) if caption is None else bool(caption)
        return width, height, n, start, end, homs, float(motion), show_caption

    # -- rendering ----------------------------------------------------------------------------

    def generate(self, request: GenerationRequest, progress: ProgressFn | None = None) -> np.ndarray:
        width, height, n, start, end, homs, motion, show_caption = self._validate(request)
        seed = int(request.seed)

        if start is not None:
            world = start
        else:
            world = render_scene_card(
                width, height, seed, request.shot_id, request.prompt, request.segment_index
            )
        discs = _discs(seed) if motion > 0 else []
        caption = _caption_layer(width, height, request.prompt) if show_caption else None

        frames = np.empty((n, height, width, 3), dtype=np.uint8)
        last = n - 1
        for i in range(n):
            fade = min(1.0, i / FADE_FRAMES)
            if discs and fade > 0.0:
                src = world.copy()
                _draw_discs(src, discs, i / float(request.fps), motion, fade)
            else:
                src = world
            h = homs[i] if homs is not None else None
            if h is None or is_identity_homography(h):
                frames[i] = src
            else:
                frames[i] = warp_frame(src, h, border="reflect")

            if caption is not None and 0 < i < last:
                opacity = min(1.0, 2.0 * math.sin(math.pi * i / last))
                if opacity > 0.0:
                    _apply_caption(frames[i], caption, opacity)

            if end is not None:
                w = 1.0 if i == last else _smoothstep((i / last - 0.5) / 0.5)
                if w >= 1.0:
                    frames[i] = end
                elif w > 0.0:
                    frames[i] = cv2.addWeighted(frames[i], 1.0 - w, end, w, 0.0)

            if progress is not None:
                progress(i + 1, n)
        return frames

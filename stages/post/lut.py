"""Adobe/Resolve .cube colour lookup tables: parsing and application.

Format: optional `TITLE "..."`, `LUT_3D_SIZE N` (or `LUT_1D_SIZE N`), optional `DOMAIN_MIN r g b`
/ `DOMAIN_MAX r g b` (default 0 and 1), `#` comments, then the table as lines of three floats.
In a 3D table red varies fastest, then green, then blue. Other keywords (LUT_3D_INPUT_RANGE and
vendor extensions) are ignored.

3D tables are applied with Pillow's ImageFilter.Color3DLUT (trilinear interpolation between the
eight surrounding grid points, in C; within 1 level of a float trilinear reference, ~3x faster
than the NumPy code it replaced: tests/perf/bench_lut.py). Pillow keeps table values in 16-bit
fixed point, so values beyond about -2..2 are clamped there (output is clipped to 0..1 anyway).
A DOMAIN other than 0..1 is applied first as a per-channel 8-bit remap. 1D tables are applied by
linear interpolation per channel (a 256-entry table per channel through cv2.LUT). Frames are
uint8 RGB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageFilter


class LutError(ValueError):
    """A .cube file that cannot be used; the message names the file and line, never quotes the
    file (a storyboard may point a LUT at a file whose lines are nobody's business)."""


MAX_3D_SIZE = 256
MAX_1D_SIZE = 65536
# The largest table (256^3 rows) as text, with room for comments and long numbers.
MAX_CUBE_BYTES = 1024 * 1024 * 1024


@dataclass(frozen=True, eq=False)  # hashed by identity: the Pillow filter is cached per table
class CubeLut:
    table: np.ndarray  # 3D: (N, N, N, 3) indexed [b, g, r]; 1D: (N, 3)
    domain_min: np.ndarray
    domain_max: np.ndarray
    title: str = ""

    @property
    def is_3d(self) -> bool:
        return self.table.ndim == 4

    @property
    def size(self) -> int:
        return self.table.shape[0]


def parse_cube(text: str, name: str = "<cube>") -> CubeLut:
    """Parse and check a .cube text: exactly one size keyword, the size in range (checked
    before the table is read), as many rows as the size needs, every value finite."""
    size3 = size1 = None
    dmin = np.zeros(3, np.float32)
    dmax = np.ones(3, np.float32)
    title = ""
    rows: list[tuple[float, float, float]] = []
    expected: int | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        head = line.split()[0]
        if head[0].isalpha() and not _is_number(head):  # "nan 0 0" is a (bad) row
            parts = line.split()
            try:
                if head == "TITLE":
                    title = line[len("TITLE"):].strip().strip('"')
                elif head == "LUT_3D_SIZE":
                    size3 = int(parts[1])
                elif head == "LUT_1D_SIZE":
                    size1 = int(parts[1])
                elif head in ("DOMAIN_MIN", "DOMAIN_MAX"):
                    value = np.array([float(v) for v in parts[1:4]], np.float32)
                    if value.shape != (3,):
                        raise ValueError("needs three numbers")
                    if head == "DOMAIN_MIN":
                        dmin = value
                    else:
                        dmax = value
            except (IndexError, ValueError):
                shown = head if head in ("TITLE", "LUT_3D_SIZE", "LUT_1D_SIZE", "DOMAIN_MIN",
                                         "DOMAIN_MAX") else "keyword"
                raise LutError(f"{name} line {lineno}: bad {shown} line (expected "
                               f"{_KEYWORD_FORM.get(shown, 'a .cube keyword')})") from None
            if head in ("LUT_3D_SIZE", "LUT_1D_SIZE"):
                expected = _check_size(name, size3, size1)
            continue
        try:
            values = tuple(float(v) for v in line.split())
        except ValueError:
            raise LutError(f"{name} line {lineno}: expected three numbers; this is not a "
                           ".cube table row") from None
        if len(values) != 3:
            raise LutError(f"{name} line {lineno}: expected three numbers, found "
                           f"{len(values)}")
        if not all(math.isfinite(v) for v in values):
            raise LutError(f"{name} line {lineno}: table values must be finite numbers (no "
                           "nan or inf)")
        rows.append(values)  # type: ignore[arg-type]
        if expected is not None and len(rows) > expected:
            raise LutError(f"{name}: LUT size {size3 or size1} needs {expected} table rows, "
                           f"found more")
    expected = _check_size(name, size3, size1)
    n = size3 if size3 is not None else size1
    if len(rows) != expected:
        raise LutError(f"{name}: LUT size {n} needs {expected} table rows, found {len(rows)}")
    if not (np.all(np.isfinite(dmin)) and np.all(np.isfinite(dmax))):
        raise LutError(f"{name}: DOMAIN_MIN / DOMAIN_MAX must be finite numbers")
    if np.any(dmax <= dmin):
        raise LutError(f"{name}: DOMAIN_MAX {dmax.tolist()} must exceed DOMAIN_MIN "
                       f"{dmin.tolist()} in every channel")
    table = np.asarray(rows, np.float32)
    if not np.all(np.isfinite(table)):  # a value beyond float32's range
        raise LutError(f"{name}: table values must be finite numbers within float range")
    if size3:
        table = table.reshape(n, n, n, 3)  # red fastest: [b, g, r]
    return CubeLut(table, dmin, dmax, title)


_KEYWORD_FORM = {"TITLE": 'TITLE "name"', "LUT_3D_SIZE": "LUT_3D_SIZE N",
                 "LUT_1D_SIZE": "LUT_1D_SIZE N", "DOMAIN_MIN": "DOMAIN_MIN r g b",
                 "DOMAIN_MAX": "DOMAIN_MAX r g b"}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_size(name: str, size3: int | None, size1: int | None) -> int:
    """Rows the declared size needs; LutError for no size, both sizes or one out of range."""
    if (size3 is None) == (size1 is None):
        raise LutError(f"{name}: needs exactly one of LUT_3D_SIZE or LUT_1D_SIZE")
    n = size3 if size3 is not None else size1
    if n is None or not 2 <= n <= (MAX_3D_SIZE if size3 is not None else MAX_1D_SIZE):
        raise LutError(f"{name}: table size {n} is out of range (3D: 2..{MAX_3D_SIZE}, "
                       f"1D: 2..{MAX_1D_SIZE})")
    return n**3 if size3 is not None else n


def load_cube(path: Path | str) -> CubeLut:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_CUBE_BYTES:
            raise LutError(f"LUT {path} is larger than {MAX_CUBE_BYTES // (1024 * 1024)} MB; "
                           "no .cube table is that big")
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise LutError(f"cannot read LUT {path}: {exc.strerror}") from None
    return parse_cube(text, str(path))


def format_cube(table: np.ndarray, title: str = "") -> str:
    """A 3D (N, N, N, 3) [b, g, r] or 1D (N, 3) table as .cube text."""
    lines = [f'TITLE "{title}"'] if title else []
    n = table.shape[0]
    lines.append(f"LUT_3D_SIZE {n}" if table.ndim == 4 else f"LUT_1D_SIZE {n}")
    for r, g, b in table.reshape(-1, 3):
        lines.append(f"{r:.6f} {g:.6f} {b:.6f}")
    return "\n".join(lines) + "\n"


def identity_table(n: int) -> np.ndarray:
    axis = np.linspace(0.0, 1.0, n, dtype=np.float32)
    b, g, r = np.meshgrid(axis, axis, axis, indexing="ij")
    return np.stack([r, g, b], -1)


def _domain_map(lut: CubeLut) -> np.ndarray | None:
    """Per channel, uint8 value -> uint8 position in the table's 0..1 grid for a DOMAIN other
    than 0..1 (None for the default domain): Pillow's filter has no domain of its own."""
    if np.all(lut.domain_min == 0.0) and np.all(lut.domain_max == 1.0):
        return None
    v = np.arange(256, dtype=np.float32)[:, None] / 255.0
    x = np.clip((v - lut.domain_min) / (lut.domain_max - lut.domain_min), 0.0, 1.0)
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


@lru_cache(maxsize=8)
def _pillow_filter(lut: CubeLut) -> tuple[ImageFilter.Color3DLUT, np.ndarray | None]:
    # The .cube order (red fastest, then green, then blue) is Pillow's table order too.
    n = lut.size
    return (ImageFilter.Color3DLUT((n, n, n), lut.table.reshape(-1), channels=3),
            _domain_map(lut))


@lru_cache(maxsize=8)
def _table_1d(lut: CubeLut) -> np.ndarray:
    """A 1D table as uint8 (256, 3): each channel's value -> its output, made once per table
    (like the 3D filter), not per frame."""
    v = np.arange(256, dtype=np.float32)[:, None] / 255.0
    x = np.clip((v - lut.domain_min) / (lut.domain_max - lut.domain_min) * (lut.size - 1),
                0, lut.size - 1)
    out_lut = np.empty((256, 3), np.float32)
    for c in range(3):
        out_lut[:, c] = np.interp(x[:, c], np.arange(lut.size), lut.table[:, c])
    return np.clip(out_lut * 255.0 + 0.5, 0, 255).astype(np.uint8)


def apply_lut(frame: np.ndarray, lut: CubeLut, strength: float = 1.0) -> np.ndarray:
    """`frame` (uint8 RGB) through the table; `strength` mixes with the original."""
    if not lut.is_3d:
        mapped = _table_1d(lut)
        out = cv2.merge([cv2.LUT(frame[..., c], mapped[:, c]) for c in range(3)])
    else:
        pil, domain = _pillow_filter(lut)
        src = frame
        if domain is not None:
            src = cv2.merge([cv2.LUT(frame[..., c], domain[:, c]) for c in range(3)])
        out = np.asarray(Image.fromarray(np.ascontiguousarray(src), "RGB").filter(pil))
    if strength >= 1.0:
        return out
    return cv2.addWeighted(frame, 1.0 - strength, out, strength, 0.0)

"""A straightforward float trilinear .cube application: the oracle that Pillow's Color3DLUT (what
stages.post.lut uses) is checked and timed against. This is the implementation reelforge used
before it applied 3D LUTs through Pillow; it lives on here only as a reference."""

from __future__ import annotations

import numpy as np

from stages.post.lut import CubeLut


def reference_apply_3d(frame: np.ndarray, lut: CubeLut) -> np.ndarray:
    """`frame` (uint8 RGB) through the 3D table, trilinear in float32, rounded to uint8."""
    assert lut.is_3d
    v = np.arange(256, dtype=np.float32)[:, None] / 255.0
    x = np.clip((v - lut.domain_min) / (lut.domain_max - lut.domain_min) * (lut.size - 1),
                0, lut.size - 1)
    i0 = np.minimum(np.floor(x), lut.size - 2).astype(np.intp)
    frac = (x - i0).astype(np.float32)
    t = lut.table
    out = np.empty_like(frame)
    for y0 in range(0, frame.shape[0], 128):
        chunk = frame[y0:y0 + 128]
        r, g, b = chunk[..., 0], chunk[..., 1], chunk[..., 2]
        ir, ig, ib = i0[r, 0], i0[g, 1], i0[b, 2]
        fr, fg, fb = frac[r, 0][..., None], frac[g, 1][..., None], frac[b, 2][..., None]
        c00 = t[ib, ig, ir] * (1 - fr) + t[ib, ig, ir + 1] * fr
        c01 = t[ib, ig + 1, ir] * (1 - fr) + t[ib, ig + 1, ir + 1] * fr
        c10 = t[ib + 1, ig, ir] * (1 - fr) + t[ib + 1, ig, ir + 1] * fr
        c11 = t[ib + 1, ig + 1, ir] * (1 - fr) + t[ib + 1, ig + 1, ir + 1] * fr
        value = (c00 * (1 - fg) + c01 * fg) * (1 - fb) + (c10 * (1 - fg) + c11 * fg) * fb
        out[y0:y0 + 128] = np.clip(value * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out

"""CIEDE2000 colour differences for tests and benchmarks, from colour-science (a `dev` extra):
`ciede2000` on CIELAB arrays, `mean_delta_e` on uint8 RGB images (Lab through
stages.render.color_drift.lab, the conversion the drift correction itself uses)."""

from __future__ import annotations

import sys
import warnings
from unittest import mock

import numpy as np

with warnings.catch_warnings():
    # colour announces on import that its SciPy / Matplotlib features are off; CIEDE2000 needs
    # neither.
    warnings.simplefilter("ignore")
    from colour.difference import delta_E_CIE2000

# Without SciPy / Matplotlib installed, colour puts MagicMock stand-ins for them into
# sys.modules; later `importlib.util.find_spec("matplotlib")` (diffusers does it on import) then
# raises "matplotlib.__spec__ is not set". Take the stand-ins out again: colour keeps its own
# references, and nothing else may believe those packages exist.
for _name in [n for n, m in sys.modules.items() if isinstance(m, mock.Mock)]:
    del sys.modules[_name]


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 (kL = kC = kH = 1) between Lab arrays of shape (..., 3), element-wise."""
    lab1, lab2 = np.asarray(lab1, np.float64), np.asarray(lab2, np.float64)
    if lab1.shape[-1:] != (3,) or lab2.shape[-1:] != (3,):
        raise ValueError(f"ciede2000 needs Lab arrays with a last axis of 3, got {lab1.shape} "
                         f"and {lab2.shape}")
    return np.asarray(delta_E_CIE2000(lab1, lab2), np.float64)


def mean_delta_e(a: np.ndarray, b: np.ndarray) -> float:
    """Mean CIEDE2000 between two uint8 RGB images of one shape."""
    from stages.render.color_drift import lab

    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"mean_delta_e needs images of one shape, got {a.shape} and {b.shape}")
    return float(ciede2000(lab(a), lab(b)).mean())

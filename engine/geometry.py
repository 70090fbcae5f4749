"""Camera math: the homographies behind the storyboard's camera moves, and the warp that applies them.

Pixel coordinates are OpenCV's: x to the right, y down, pixel centres on integers, so the centre of
a W x H frame is ((W - 1) / 2, (H - 1) / 2). Every homography here maps SOURCE pixel coordinates
(the view at the shot's first frame, "the world") to OUTPUT pixel coordinates (what the camera in a
given `CameraState` sees), which is exactly the matrix `cv2.warpPerspective` takes.

The camera of a `CameraState` is built in this order (the first step applies first to a point):

1. pan: the camera slides across the picture plane by (pan_x * W, pan_y * H) source pixels, so the
   picture moves the opposite way: pan_x = 0.25 moves everything 0.25 * W pixels to the LEFT;
   pan_y > 0 moves it UP. Pan is measured in source pixels, before zoom.
2. tilt: the camera turns up by `tilt` degrees about the horizontal axis through its optical
   centre: H_tilt = K . R_x(tilt) . K^-1, with K = [[f, 0, cx], [0, f, cy], [0, 0, 1]] and focal
   length f = max(W, H) pixels (a horizontal field of view of about 53 degrees for a landscape
   frame). Tilting up moves the picture DOWN (the centre goes to cy + f * tan(tilt)) and makes the
   top of the picture narrower than the bottom (verticals converge upwards, as when looking up at
   a building). Negative tilt is the mirror image.
3. roll: the camera rolls `rotate` degrees clockwise about its optical axis, so the picture turns
   counter-clockwise about the frame centre: rotate = 90 takes a point right of the centre to
   above the centre.
4. zoom: the picture scales by (1 + zoom) about the frame centre: zoom = 1 doubles every distance
   from the centre; -1 < zoom < 0 zooms out.

So H(state) = Zoom . Roll . Tilt . Pan (matrix product, rightmost first). A shot's camera path is
absolute (relative to the shot's first frame); an engine given a start image that already shows
`reference_state` applies `relative_homography(state, reference_state)` = H(state) . H(ref)^-1.
"""

from __future__ import annotations

import math
from typing import Literal

import cv2
import numpy as np

from .base import CameraState

__all__ = [
    "BORDERS",
    "apply_homography",
    "camera_homography",
    "focal_length",
    "frame_centre",
    "is_identity_homography",
    "relative_homography",
    "warp_frame",
]

Border = Literal["reflect", "replicate", "constant", "wrap"]

# "reflect" is OpenCV's BORDER_REFLECT_101 (gfedcb|abcdefgh|gfedcba): panning never shows black.
BORDERS: dict[str, int] = {
    "reflect": cv2.BORDER_REFLECT_101,
    "replicate": cv2.BORDER_REPLICATE,
    "constant": cv2.BORDER_CONSTANT,
    "wrap": cv2.BORDER_WRAP,
}

_IDENTITY_TOL = 1e-10


def focal_length(width: int, height: int) -> float:
    """The focal length (pixels) of the virtual camera used for tilt: max(width, height)."""
    return float(max(width, height))


def frame_centre(width: int, height: int) -> tuple[float, float]:
    """The centre of a width x height frame in pixel coordinates (pixel centres on integers)."""
    return ((width - 1) / 2.0, (height - 1) / 2.0)


def _check_size(width: int, height: int) -> None:
    if int(width) != width or int(height) != height or width < 1 or height < 1:
        raise ValueError(f"frame size must be positive integers, got {width}x{height}")


def _check_state(state: CameraState) -> None:
    values = state.as_tuple()
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"camera state has a non-finite value: {state}")
    if state.zoom <= -1.0:
        raise ValueError(f"camera zoom={state.zoom} is invalid: zoom is scale - 1 and must be > -1")
    if abs(state.tilt) >= 90.0:
        raise ValueError(f"camera tilt={state.tilt} is invalid: |tilt| must be < 90 degrees")


def camera_homography(state: CameraState, width: int, height: int) -> np.ndarray:
    """The 3x3 float64 homography from source pixels (the shot's first view) to the view of a
    camera in `state`, for a `width` x `height` frame. See the module docstring for conventions.

    Raises ValueError for zoom <= -1, |tilt| >= 90 or non-finite values.
    """
    _check_size(width, height)
    _check_state(state)
    if state.is_identity():
        return np.eye(3)
    cx, cy = frame_centre(width, height)

    pan = np.array(
        [[1.0, 0.0, -state.pan_x * width], [0.0, 1.0, -state.pan_y * height], [0.0, 0.0, 1.0]]
    )

    if state.tilt != 0.0:
        f = focal_length(width, height)
        k = np.array([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])
        k_inv = np.array([[1.0 / f, 0.0, -cx / f], [0.0, 1.0 / f, -cy / f], [0.0, 0.0, 1.0]])
        t = math.radians(state.tilt)
        c, s = math.cos(t), math.sin(t)
        # Rows are the tilted camera's axes in the old camera's frame (x right, y down, z forward):
        # tilting up turns the forward axis towards -y, so straight-ahead points drop below centre.
        r_x = np.array([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])
        tilt = k @ r_x @ k_inv
    else:
        tilt = np.eye(3)

    # Roll and zoom about the centre. In y-down coordinates this matrix turns the picture
    # counter-clockwise as seen on screen: (1, 0) -> (cos, -sin), i.e. right of centre -> above.
    a = math.radians(state.rotate)
    scale = 1.0 + state.zoom
    c, s = math.cos(a) * scale, math.sin(a) * scale
    if state.rotate % 90.0 == 0.0:
        # Exact quarter turns (cos/sin of multiples of pi/2 are off by ~1e-16 in floating point).
        quarter = int(state.rotate // 90.0) % 4
        c, s = [(1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)][quarter]
        c, s = c * scale, s * scale
    roll_zoom = np.array(
        [[c, s, cx - c * cx - s * cy], [-s, c, cy + s * cx - c * cy], [0.0, 0.0, 1.0]]
    )

    h = roll_zoom @ tilt @ pan
    return h / h[2, 2]


def relative_homography(
    state: CameraState, reference_state: CameraState, width: int, height: int
) -> np.ndarray:
    """H(state) . H(reference_state)^-1: maps pixels of the view at `reference_state` to pixels of
    the view at `state` (the camera move since the reference frame). Identity when equal."""
    if state == reference_state:
        _check_state(state)
        return np.eye(3)
    h = camera_homography(state, width, height) @ np.linalg.inv(
        camera_homography(reference_state, width, height)
    )
    return h / h[2, 2]


def apply_homography(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map points of shape (..., 2) (x, y) through homography `h`; returns float64 (..., 2)."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape[-1] != 2:
        raise ValueError(f"points must have shape (..., 2), got {pts.shape}")
    flat = pts.reshape(-1, 2)
    homog = np.concatenate([flat, np.ones((flat.shape[0], 1))], axis=1) @ np.asarray(h, np.float64).T
    return (homog[:, :2] / homog[:, 2:3]).reshape(pts.shape)


def is_identity_homography(h: np.ndarray, tol: float = _IDENTITY_TOL) -> bool:
    """Whether `h` (normalised so h[2,2] = 1) is the identity within `tol` per entry."""
    h = np.asarray(h, dtype=np.float64)
    if h[2, 2] == 0.0:
        return False
    return bool(np.all(np.abs(h / h[2, 2] - np.eye(3)) <= tol))


def warp_frame(frame: np.ndarray, h: np.ndarray, border: Border = "reflect") -> np.ndarray:
    """Warp `frame` (H, W) or (H, W, C<=4), any OpenCV dtype, by the source->output homography `h`
    into a frame of the same size, with bilinear interpolation.

    border: "reflect" (BORDER_REFLECT_101, the default: panning never shows black), "replicate",
    "constant" (black) or "wrap". The identity returns a copy without resampling.
    """
    if border not in BORDERS:
        raise ValueError(f"border={border!r} is not one of {sorted(BORDERS)}")
    h = np.asarray(h, dtype=np.float64)
    if h.shape != (3, 3):
        raise ValueError(f"homography must be 3x3, got shape {h.shape}")
    frame = np.asarray(frame)
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and not 1 <= frame.shape[2] <= 4):
        raise ValueError(f"frame must be (H, W) or (H, W, C) with C <= 4, got shape {frame.shape}")
    if is_identity_homography(h):
        return frame.copy()
    height, width = frame.shape[:2]
    out = cv2.warpPerspective(
        np.ascontiguousarray(frame),
        h,
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=BORDERS[border],
        borderValue=0,
    )
    if out.ndim == 2 and frame.ndim == 3:  # OpenCV drops a single channel axis
        out = out[:, :, None]
    return out

"""Pinhole camera math for the 2.5D moves: dolly, truck, pedestal, orbit, dolly zoom.

Consistent with engine.geometry: pixel centres on integers, principal point at the frame centre,
focal length f = max(W, H) pixels, camera axes x right, y down, z forward. The world is the
camera frame of the shot's first view (every 3D value zero).

Depth maps are relative inverse depth d in 0..1 (white = 1 = nearest). They become scene depth
by `scene_depth`: inverse depth is linear in d, the farthest value (d = 0) lies DEPTH_RANGE times
as far as the nearest (d = 1), and distances are in *subject distances*: the median depth of the
frame's central third is 1. Hence the units of the moves:

- truck: frame widths at the subject plane (+ right); with a flat depth map, truck = pan_x;
- pedestal: frame heights at the subject plane (+ up); flat: pedestal = -pan_y;
- dolly: fraction of the subject distance moved forward (0.5: halfway to the subject);
  flat: zoom = dolly / (1 - dolly);
- orbit: degrees the camera circles the subject (a vertical axis through the subject point on
  the optical axis, + moves the camera to the right), always looking at it;
- dolly_zoom: a dolly of that amount while the focal length scales by (1 - dolly_zoom), so the
  subject plane keeps its size and the background stretches (+) or compresses (-);
- the 2D values (pan, tilt, roll, zoom) then act on the projected picture, as geometry.py's
  homography, so a state without 3D values is exactly today's 2D move.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..base import CameraState
from ..geometry import camera_homography, focal_length, frame_centre

__all__ = ["DEPTH_RANGE", "Pose", "pose_of", "scene_depth", "subject_disparity",
           "depth_to_disparity", "project", "unproject"]

# Far / near distance ratio of a relative depth map: a depth map says only "nearer / farther",
# this fixes how much farther black is than white. 10 reads as a landscape with a near subject.
DEPTH_RANGE = 10.0

# Closest a point may come to a moved camera before it is dropped (subject distances).
NEAR_CLIP = 1e-3


def depth_to_disparity(depth01: np.ndarray) -> np.ndarray:
    """Relative inverse depth 0..1 -> un-normalised inverse scene depth 1/DEPTH_RANGE..1."""
    d = np.clip(np.asarray(depth01, np.float64), 0.0, 1.0)
    return 1.0 / DEPTH_RANGE + d * (1.0 - 1.0 / DEPTH_RANGE)


def subject_disparity(depth01: np.ndarray) -> float:
    """The inverse depth of the subject: the median over the frame's central third."""
    h, w = depth01.shape[:2]
    centre = depth01[h // 3: max(h // 3 + 1, 2 * h // 3), w // 3: max(w // 3 + 1, 2 * w // 3)]
    return float(np.median(depth_to_disparity(centre)))


def scene_depth(depth01: np.ndarray, subject: float | None = None) -> np.ndarray:
    """Scene depth (float64, subject distances) of a 0..1 depth map; `subject`: the subject's
    inverse depth (default: `subject_disparity(depth01)`)."""
    s = subject_disparity(depth01) if subject is None else subject
    return s / depth_to_disparity(depth01)


def depth_to_map(z: np.ndarray, subject: float) -> np.ndarray:
    """Inverse of `scene_depth`: scene depth -> 0..1 map value (1 = nearest), clipped."""
    disparity = subject / np.maximum(np.asarray(z, np.float64), NEAR_CLIP)
    return np.clip((disparity - 1.0 / DEPTH_RANGE) / (1.0 - 1.0 / DEPTH_RANGE), 0.0, 1.0)


@dataclass(frozen=True)
class Pose:
    """A camera: world -> camera rotation `r`, centre `c` (world), focal scale `k` (f' = k f),
    and the 2D homography applied to its projected pixels."""

    r: np.ndarray
    c: np.ndarray
    k: float
    h2d: np.ndarray


def pose_of(state: CameraState, width: int, height: int) -> Pose:
    """The camera of `state` (see the module docstring for the units)."""
    f = focal_length(width, height)
    theta = math.radians(state.orbit)
    ct, st = math.cos(theta), math.sin(theta)
    # Rows: the orbiting camera's x, y, z axes in world coordinates; it looks at (0, 0, 1).
    r = np.array([[ct, 0.0, st], [0.0, 1.0, 0.0], [-st, 0.0, ct]])
    orbit_centre = np.array([st, 0.0, 1.0 - ct])
    local = np.array([state.truck * width / f, -state.pedestal * height / f,
                      state.dolly + state.dolly_zoom])
    c = orbit_centre + r.T @ local
    k = 1.0 - state.dolly_zoom
    flat = CameraState(state.pan_x, state.pan_y, state.zoom, state.rotate, state.tilt)
    return Pose(r=r, c=c, k=k, h2d=camera_homography(flat, width, height))


def _apply(h: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
    return (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / w, (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / w


def unproject(pose: Pose, u: np.ndarray, v: np.ndarray, z: np.ndarray, width: int, height: int
              ) -> np.ndarray:
    """World points (..., 3) seen at pixels (u, v) of `pose`'s view at camera depth `z`."""
    f = focal_length(width, height) * pose.k
    cx, cy = frame_centre(width, height)
    qx, qy = _apply(np.linalg.inv(pose.h2d), u, v)
    cam = np.stack([(qx - cx) / f * z, (qy - cy) / f * z, z], axis=-1)
    return cam @ pose.r + pose.c  # r.T @ p for each row p


def project(pose: Pose, points: np.ndarray, width: int, height: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels (u, v) and camera depth z of world `points` (..., 3) in `pose`'s view."""
    f = focal_length(width, height) * pose.k
    cx, cy = frame_centre(width, height)
    cam = (points - pose.c) @ pose.r.T
    z = cam[..., 2]
    safe = np.where(z > NEAR_CLIP, z, np.nan)
    u, v = _apply(pose.h2d, cam[..., 0] / safe * f + cx, cam[..., 1] / safe * f + cy)
    return u, v, z

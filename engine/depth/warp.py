"""The depth warp: re-render a still from a moved camera using its depth map.

For a view at `reference` (the start image) and a camera `state`:

1. every source pixel is lifted to 3D with its depth and projected into the new view; its new
   depth is splatted to the pixels around where it lands, nearest wins (a z-buffer, so near
   things occlude far ones whatever order they come in); pixels nothing reached take the
   depth of the nearest pixel that has one;
2. every output pixel is then traced back through its splatted depth to an exact source
   position and sampled bilinearly (cv2.remap, reflected borders as engine.geometry does), so a
   flat depth map reproduces the 2D homography warp;
3. an output pixel whose traced source shows another depth than the one it traced (the point
   was hidden in the start image: a disocclusion) is a hole, filled by inpainting
   (cv2.inpaint, Telea) rather than by stretching the edge pixels;
4. with aperture > 0, depth of field blurs each pixel by its distance from the focus depth.

Pixels outside the start image come from its reflection, like the 2D warp's border.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from ..base import CameraState
from ..geometry import relative_homography, warp_frame
from .camera3d import Pose, depth_to_map, pose_of, project, scene_depth, subject_disparity, unproject
from .maps import fit_depth

__all__ = ["DepthScene", "DepthWarper", "depth_guide", "uses_depth_warp", "warp_along",
           "warp_path", "warp_with_depth", "warper_for"]

# A traced source point this much nearer than expected means the output pixel was hidden.
_OCCLUSION_TOLERANCE = 0.04
# Neighbouring depths further apart than this (relative) are an edge between surfaces.
_EDGE = 0.15
_INPAINT_RADIUS = 3
# Width (pixels) of the border around a hole whose nearer pixels the inpainting ignores.
_RING = 2
# Holes of at most this many pixels are inpainted from all sides.
_SMALL_HOLE = 4
# How far (pixels, per axis) a splatted point reaches: just under one.
_FOOTPRINT = 1.0 - 1e-4
# Depth of field: blur radius (in frame widths) at aperture 1 and full depth-map distance.
_MAX_BLUR = 0.05
_BLUR_LEVELS = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0)


@dataclass(frozen=True)
class DepthScene:
    """A shot's depth: the 0..1 map of its first view (camera state zero), the subject's
    inverse depth that fixes the units, and the frame size."""

    depth01: np.ndarray
    subject: float

    @classmethod
    def from_map(cls, depth01: np.ndarray) -> "DepthScene":
        d = np.clip(np.asarray(depth01, np.float32), 0.0, 1.0)
        return cls(depth01=d, subject=subject_disparity(d))

    @property
    def size(self) -> tuple[int, int]:
        return self.depth01.shape[1], self.depth01.shape[0]


def _grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    return u, v


def _splat_depth(u: np.ndarray, v: np.ndarray, z: np.ndarray, width: int, height: int
                 ) -> np.ndarray:
    """Nearest depth landing on each output pixel, +inf where none lands. A point covers the
    up-to-4 pixels less than a pixel away from where it lands, so a magnified surface (a dolly
    in) stays closed instead of letting what is behind it show through the cracks; a point
    that lands on a pixel centre covers that pixel only (a still camera changes nothing)."""
    ok = np.isfinite(u) & np.isfinite(v) & np.isfinite(z)
    u, v, z = u[ok], v[ok], z[ok]
    x0, y0 = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    zbuf = np.full(height * width, np.inf)
    for dx in (0, 1):
        for dy in (0, 1):
            x, y = x0 + dx, y0 + dy
            near = (np.abs(u - x) < _FOOTPRINT) & (np.abs(v - y) < _FOOTPRINT)
            keep = near & (x >= 0) & (x < width) & (y >= 0) & (y < height)
            np.minimum.at(zbuf, y[keep] * width + x[keep], z[keep])
    return zbuf.reshape(height, width)


def _fill_nearest(z: np.ndarray) -> np.ndarray:
    """Holes (inf) take the depth of the nearest pixel that has one."""
    holes = ~np.isfinite(z)
    if not holes.any():
        return z
    if holes.all():
        return np.ones_like(z)
    _, labels = cv2.distanceTransformWithLabels(holes.astype(np.uint8), cv2.DIST_L2, 5,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    known = ~holes
    values = np.zeros(int(labels.max()) + 1)
    values[labels[known]] = z[known]
    return np.where(holes, values[labels], z)


def _view_depth(scene: DepthScene, reference: CameraState, pose: Pose, u: np.ndarray,
                v: np.ndarray) -> np.ndarray:
    """Camera depth of what the view at `pose` (camera state `reference`) shows at each pixel
    (u, v) (the reference view's depth)."""
    z0 = scene_depth(scene.depth01, scene.subject)
    if reference == CameraState():  # the depth map's own view: no round trip needed
        return z0
    width, height = scene.size
    origin = pose_of(CameraState(), width, height)
    world = unproject(origin, u, v, z0, width, height)
    pu, pv, pz = project(pose, world, width, height)
    return _fill_nearest(_splat_depth(pu, pv, pz, width, height))


def _hidden(z: np.ndarray, x: np.ndarray, y: np.ndarray, traced: np.ndarray) -> np.ndarray:
    """Whether the point traced back to (x, y) at depth `traced` is not what the reference view
    shows there. On a smooth surface (the 2x2 pixels around (x, y) within _EDGE of each other,
    a sloping ground too) any depth between theirs matches; across a depth edge only the
    nearest pixel's does, so neither side of an edge leaks into what the move uncovers."""
    h, w = z.shape
    x = np.where(np.isfinite(x), x, 0.0)
    y = np.where(np.isfinite(y), y, 0.0)
    x0 = np.clip(np.floor(x), 0, w - 1).astype(np.int64)
    y0 = np.clip(np.floor(y), 0, h - 1).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    taps = np.stack([z[y0, x0], z[y0, x1], z[y1, x0], z[y1, x1]])
    low, high = taps.min(axis=0), taps.max(axis=0)
    nearest = z[np.clip(np.rint(y), 0, h - 1).astype(np.int64),
                np.clip(np.rint(x), 0, w - 1).astype(np.int64)]
    smooth = high <= low * (1 + _EDGE)
    low = np.where(smooth, low, nearest)
    high = np.where(smooth, high, nearest)
    return (traced < low * (1 - _OCCLUSION_TOLERANCE)) | (traced > high * (1 + _OCCLUSION_TOLERANCE))


def _fill_from_behind(frame: np.ndarray, holes: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Inpaint `holes` from what lies behind them only. What a move uncovers was hidden by the
    nearer side of the edge, so for each hole every pixel around it that is nearer than the
    hole's far border is kept out of the inpainting's sources (and left as it was): the hole
    takes the far side's texture instead of a smear of the foreground."""
    out = frame.copy()
    count, labels, stats, _ = cv2.connectedComponentsWithStats(holes.astype(np.uint8),
                                                               connectivity=8)
    depth = np.where(np.isfinite(z), z, 0.0)
    height, width = holes.shape
    kernel = np.ones((2 * _RING + 1, 2 * _RING + 1), np.uint8)
    small = np.zeros(count, bool)
    for label in range(1, count):
        x, y, w, h, area = stats[label]
        if area <= _SMALL_HOLE:  # a pixel or two: no side to prefer
            small[label] = True
            continue
        margin = max(w, h) + _RING + _INPAINT_RADIUS
        rows = slice(max(0, y - margin), min(height, y + h + margin))
        cols = slice(max(0, x - margin), min(width, x + w + margin))
        hole = labels[rows, cols] == label
        ring = (cv2.dilate(hole.astype(np.uint8), kernel) > 0) & ~hole
        far = depth[rows, cols][ring].max() if ring.any() else np.inf
        nearer = depth[rows, cols] < far * (1 - _OCCLUSION_TOLERANCE)
        unknown = (hole | holes[rows, cols] | nearer).astype(np.uint8)
        filled = cv2.inpaint(np.ascontiguousarray(out[rows, cols]), unknown, _INPAINT_RADIUS,
                             cv2.INPAINT_TELEA)
        out[rows, cols][hole] = filled[hole]
    if small.any():
        tiny = small[labels]
        filled = cv2.inpaint(out, tiny.astype(np.uint8), _INPAINT_RADIUS, cv2.INPAINT_TELEA)
        out[tiny] = filled[tiny]
    return out


def _depth_of_field(frame: np.ndarray, depth01: np.ndarray, focus: float, aperture: float
                    ) -> np.ndarray:
    """Blur each pixel by |depth - focus| * aperture, blending precomputed blur levels."""
    width = frame.shape[1]
    radius = np.abs(depth01 - focus) * aperture * _MAX_BLUR * width
    if float(radius.max()) < 0.5:
        return frame
    levels = [lv for lv in _BLUR_LEVELS if lv <= max(1.0, float(radius.max())) * 2]
    stack = [frame.astype(np.float32)] + [
        cv2.GaussianBlur(frame, (0, 0), sigmaX=lv / 2.0, borderType=cv2.BORDER_REFLECT_101
                         ).astype(np.float32) for lv in levels[1:]]
    radius = np.clip(radius, 0.0, levels[-1])
    out = np.zeros(frame.shape, np.float32)
    for i in range(len(levels) - 1):
        lo, hi = levels[i], levels[i + 1]
        w = np.clip((radius - lo) / (hi - lo), 0.0, 1.0)[..., None]
        inside = ((radius >= lo) & ((radius < hi) | (i == len(levels) - 2)))[..., None]
        out += np.where(inside, stack[i] * (1 - w) + stack[i + 1] * w, 0.0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


class DepthWarper:
    """Re-renders views of one reference view (the start image at `reference`): the reference
    view's depth and 3D points are computed once for every frame of a segment."""

    def __init__(self, scene: DepthScene, reference: CameraState):
        self.scene, self.reference = scene, reference
        width, height = self.width, self.height = scene.size
        self.ref_pose = pose_of(reference, width, height)
        self.u, self.v = _grid(width, height)
        self.z_ref = _view_depth(scene, reference, self.ref_pose, self.u, self.v)
        self.world = unproject(self.ref_pose, self.u, self.v, self.z_ref, width, height)

    def warp(self, image: np.ndarray, state: CameraState, holes_out: list | None = None
             ) -> np.ndarray:
        """`image` (uint8 (H, W, 3), the view at the reference) as a camera at `state` sees
        it. `holes_out`: if a list, the boolean mask of inpainted pixels is appended."""
        width, height = self.width, self.height
        if image.shape[:2] != (height, width):
            raise ValueError(f"depth map is {width}x{height}, the frame {image.shape[1]}x"
                             f"{image.shape[0]}: resize the depth map to the frame first")
        pose = pose_of(state, width, height)
        pu, pv, pz = project(pose, self.world, width, height)
        z_out = _splat_depth(pu, pv, pz, width, height)
        z_out = _fill_nearest(z_out)
        # Trace every output pixel back to the reference view through its own depth.
        back = unproject(pose, self.u, self.v, z_out, width, height)
        su, sv, sz = project(self.ref_pose, back, width, height)
        inside = (su >= -0.5) & (su <= width - 0.5) & (sv >= -0.5) & (sv <= height - 0.5)
        hidden = inside & _hidden(self.z_ref, su, sv, sz)
        holes = hidden | ~np.isfinite(su) | ~np.isfinite(sv)
        map_x = np.where(np.isfinite(su), su, 0).astype(np.float32)
        map_y = np.where(np.isfinite(sv), sv, 0).astype(np.float32)
        out = cv2.remap(np.ascontiguousarray(image), map_x, map_y, cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REFLECT_101)
        if holes.any():
            out = _fill_from_behind(out, holes, z_out)
        if holes_out is not None:
            holes_out.append(holes)
        if state.aperture > 0.0:
            out = _depth_of_field(out, depth_to_map(z_out, self.scene.subject), state.focus,
                                  state.aperture)
        return out


def warp_with_depth(image: np.ndarray, scene: DepthScene, reference: CameraState,
                    state: CameraState, holes_out: list | None = None) -> np.ndarray:
    """`image` (uint8 (H, W, 3), the view at `reference`) as a camera at `state` sees it.

    `holes_out`: if a list, the boolean mask of inpainted pixels is appended (tests, guides)."""
    height, width = image.shape[:2]
    if scene.size != (width, height):
        raise ValueError(f"depth map is {scene.size[0]}x{scene.size[1]}, the frame "
                         f"{width}x{height}: resize the depth map to the frame first")
    return DepthWarper(scene, reference).warp(image, state, holes_out)


def uses_depth_warp(camera: Sequence[CameraState], depth: np.ndarray | None) -> bool:
    """Whether a camera path is rendered with the depth warp: a depth map and a 2.5D value
    somewhere on the path (a 2D-only path keeps the homography warp, pixel for pixel)."""
    return depth is not None and any(state.uses_depth() for state in camera)


def warper_for(camera: Sequence[CameraState], depth: np.ndarray | None, width: int,
               height: int) -> DepthWarper | None:
    """The warper for a segment's camera path (relative to camera[0]) when it takes the depth
    warp (`uses_depth_warp`), else None."""
    if not uses_depth_warp(camera, depth):
        return None
    return DepthWarper(DepthScene.from_map(fit_depth(depth, width, height)), camera[0])


def warp_along(frames: Sequence[np.ndarray], camera: Sequence[CameraState], depth: np.ndarray
               ) -> list[np.ndarray]:
    """Frame i (each showing the view at camera[0]) re-rendered at camera[i] with `depth` (the
    shot's first view's 0..1 map, any size: fitted to the frames): the depth-aware version of
    warping by relative_homography(camera[i], camera[0])."""
    if not len(frames):
        return []
    height, width = frames[0].shape[:2]
    warper = DepthWarper(DepthScene.from_map(fit_depth(depth, width, height)), camera[0])
    return [np.array(f, copy=True) if state == camera[0] else warper.warp(f, state)
            for f, state in zip(frames, camera)]


def warp_path(frames: Sequence[np.ndarray], camera: Sequence[CameraState],
              depth: np.ndarray | None = None) -> list[np.ndarray]:
    """Frame i (each showing the view at camera[0]) re-rendered at camera[i]: through `depth`
    when the path takes the depth warp (`uses_depth_warp`: parallax, occlusion), else by the
    2D homography relative to camera[0]. The one choice every guide and post warp makes."""
    if not len(frames):
        return []
    if uses_depth_warp(camera, depth):
        return warp_along(frames, camera, depth)
    height, width = frames[0].shape[:2]
    origin = camera[0]
    return [warp_frame(f, relative_homography(state, origin, width, height))
            for f, state in zip(frames, camera)]


def depth_guide(start: np.ndarray, depth01: np.ndarray, path: Sequence[CameraState]
                ) -> list[np.ndarray]:
    """The start frame re-rendered along a camera path (relative to path[0]) with depth: the
    guide video for guided engines."""
    return warp_along([start] * len(path), path, depth01)

"""Turning source frames into control frames, one function per kind. Each takes and yields uint8
RGB (H, W, 3) frames in order, streaming (memory: a chunk of frames for depth, two for flow).

- gray: luminance, as RGB;
- canny: white edges on black (OpenCV Canny on the slightly blurred luminance);
- flow: dense optical flow (OpenCV DIS) from each frame to the next, drawn as the standard
  flow colour wheel: hue = direction, value = magnitude (saturating at FLOW_FULL_SCALE of the
  frame's diagonal per frame, a fixed scale so that chunks and shots compare); the last frame
  repeats the flow into it;
- depth: a local transformers depth model (engine.depth.estimate), grey, white = near;
- pose: a local transformers ViTPose model (engine.pose.estimate) finds the performer's body
  keypoints, drawn as the OpenPose-style skeleton on black (engine.pose.draw).
"""

from __future__ import annotations

import itertools
import os
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

CANNY_LOW, CANNY_HIGH = 100, 200
FLOW_FULL_SCALE = 0.05  # flow of 5% of the diagonal per frame is drawn at full brightness
MODEL_CHUNK = 32  # frames per depth or pose call (depth is normalised over one call)

Frames = Iterable[np.ndarray]


def gray(frames: Frames) -> Iterator[np.ndarray]:
    for frame in frames:
        yield cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)


def canny(frames: Frames) -> Iterator[np.ndarray]:
    for frame in frames:
        # A light blur first: sensor noise and compression blocks would otherwise be edges.
        luma = cv2.GaussianBlur(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (3, 3), 0)
        yield cv2.cvtColor(cv2.Canny(luma, CANNY_LOW, CANNY_HIGH), cv2.COLOR_GRAY2RGB)


def flow_colours(flow: np.ndarray) -> np.ndarray:
    """A (H, W, 2) flow field as the colour wheel: hue = direction, value = magnitude."""
    height, width = flow.shape[:2]
    magnitude, angle = cv2.cartToPolar(flow[..., 0], flow[..., 1], angleInDegrees=True)
    full = FLOW_FULL_SCALE * float(np.hypot(width, height))
    hsv = np.empty((height, width, 3), np.uint8)
    hsv[..., 0] = (angle / 2.0).astype(np.uint8) % 180  # OpenCV hue is 0..179 for 0..358 degrees
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(magnitude / full * 255.0, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def flow(frames: Frames) -> Iterator[np.ndarray]:
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    previous: np.ndarray | None = None
    drawn: np.ndarray | None = None
    for frame in frames:
        luma = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        if previous is not None:
            drawn = flow_colours(dis.calc(previous, luma, None))
            yield drawn  # the previous frame's: its motion towards this one
        previous = luma
    if previous is not None:
        # The last frame has no next one: it repeats the flow into it (a single frame: none).
        yield drawn if drawn is not None else np.zeros(previous.shape + (3,), np.uint8)


def _chunks(frames: Frames) -> Iterator[np.ndarray]:
    """`frames` as uint8 (n, H, W, 3) stacks of at most MODEL_CHUNK: one model call each."""
    source = iter(frames)
    while chunk := list(itertools.islice(source, MODEL_CHUNK)):
        yield np.stack(chunk)


def depth(frames: Frames, model: str | os.PathLike, device: str = "cpu") -> Iterator[np.ndarray]:
    from engine.depth.estimate import estimate_depth

    for chunk in _chunks(frames):
        for near in estimate_depth(chunk, model, device):
            grey = np.clip(near * 255.0 + 0.5, 0, 255).astype(np.uint8)
            yield cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)


def pose(frames: Frames, model: str | os.PathLike, device: str = "cpu") -> Iterator[np.ndarray]:
    from engine.pose.draw import draw_pose
    from engine.pose.estimate import estimate_poses

    for chunk in _chunks(frames):
        height, width = chunk.shape[1:3]
        for points in estimate_poses(chunk, model, device):
            yield draw_pose(points, width, height)


def extractor(kind: str, model: str | os.PathLike | None = None, device: str = "cpu"
              ) -> Callable[[Frames], Iterator[np.ndarray]]:
    """The function that turns source frames into `kind` control frames."""
    if kind == "depth":
        return lambda frames: depth(frames, model, device)
    if kind == "pose":
        return lambda frames: pose(frames, model, device)
    plain = {"gray": gray, "canny": canny, "flow": flow}
    if kind not in plain:
        raise ValueError(f"control kind {kind!r} cannot be extracted here (kinds: depth, pose, "
                         f"{', '.join(plain)})")
    return plain[kind]

"""Keypoints drawn as the OpenPose-style skeleton pose-conditioned video models were trained on
(the pose videos of Wan-Animate's and VACE's preprocessing, ControlNet's openpose): 18 points
(COCO's 17 and a neck halfway between the shoulders), each limb a coloured ellipse at 60%
opacity on black, each joint a dot in its own colour. Keypoints under MIN_SCORE are left out,
and so is every limb that touches one."""

from __future__ import annotations

import math

import numpy as np

from .estimate import MIN_SCORE

# OpenPose's point order as indices into COCO's (None: the neck, the shoulders' midpoint).
_OPENPOSE_FROM_COCO = (0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
# Limbs as pairs of OpenPose points, in OpenPose's drawing order.
LIMBS = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
         (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))
# One colour per point and per limb (RGB), OpenPose's palette.
COLOURS = ((255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0),
           (85, 255, 0), (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255),
           (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255), (170, 0, 255),
           (255, 0, 255), (255, 0, 170), (255, 0, 85))


def openpose_points(points: np.ndarray) -> list[tuple[float, float] | None]:
    """COCO (K>=17, 3) keypoints as OpenPose's 18 points; None where not confident."""
    def point(index: int) -> tuple[float, float] | None:
        x, y, score = points[index]
        return (float(x), float(y)) if score >= MIN_SCORE else None

    result = []
    for coco in _OPENPOSE_FROM_COCO:
        if coco is not None:
            result.append(point(coco))
            continue
        left, right = point(5), point(6)
        result.append(None if left is None or right is None
                      else ((left[0] + right[0]) / 2, (left[1] + right[1]) / 2))
    return result


def draw_pose(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """The skeleton of (K, 3) keypoints (x, y, confidence) on a black uint8 RGB frame. Line
    width and dot size scale with the frame (OpenPose's 4 px at 512 px)."""
    import cv2

    frame = np.zeros((height, width, 3), np.uint8)
    joints = openpose_points(points)
    stick = max(1, round(4 * min(width, height) / 512))
    for index, (a, b) in enumerate(LIMBS):
        if joints[a] is None or joints[b] is None:
            continue
        (xa, ya), (xb, yb) = joints[a], joints[b]
        length = math.hypot(xa - xb, ya - yb)
        angle = math.degrees(math.atan2(ya - yb, xa - xb))
        polygon = cv2.ellipse2Poly((int(round((xa + xb) / 2)), int(round((ya + yb) / 2))),
                                   (max(1, int(round(length / 2))), stick), int(angle), 0, 360, 1)
        limb = frame.copy()
        cv2.fillConvexPoly(limb, polygon, COLOURS[index])
        frame = cv2.addWeighted(frame, 0.4, limb, 0.6, 0)
    for index, joint in enumerate(joints):
        if joint is not None:
            cv2.circle(frame, (int(round(joint[0])), int(round(joint[1]))), stick,
                       COLOURS[index], thickness=-1)
    return frame

"""A face track from a driving video: the face video Wan-Animate's face (motion) encoder reads.

Wan-Animate conditions on two videos made from the performer's clip: the pose video (the body)
and a square crop around the face, at the transformer's `motion_encoder_size` (512 for the
released checkpoint). Cropping the frame centre (what this replaced) gives the encoder a face
only when the performer happens to stand in the middle.

With the performer's body keypoints (a local pose model, `pose.model`; engine.pose), the face
box per frame is the square around the head keypoints (nose, eyes, ears). Without them, a
detector finds face boxes: cv2.FaceDetectorYN when a YuNet ONNX file is given
(engine option `face_detector`), else OpenCV's bundled frontal-face Haar cascade where the
installed OpenCV still has it (4.x; OpenCV 5 dropped CascadeClassifier: then no detector runs,
the face video is the frame centre, and the note says how to get a track). The largest box is kept,
centre and size are smoothed over time (exponential smoothing forwards and backwards, so without
lag: detector boxes jitter by several pixels frame to frame, and a jittering crop reads as head
motion to the encoder), and a square of
`margin` times the face size is cropped around it. A frame without a detection reuses the
previous box (the first detected box for frames before it; the frame centre when nothing is ever
found) and says so in the track's notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .estimate import MIN_SCORE

# (x, y, w, h) boxes in pixels, for one RGB uint8 frame.
Detector = Callable[[np.ndarray], Sequence[tuple[int, int, int, int]]]
MIN_FACE_PX = 2.0  # head keypoints closer than this give no face box (no size to go by)


@dataclass
class FaceTrack:
    boxes: list[tuple[float, float, float]]  # per frame: centre x, centre y, square side
    detected: list[bool]
    notes: list[str] = field(default_factory=list)


def haar_detector(min_size: int = 24) -> Detector:
    """OpenCV's bundled frontal-face Haar cascade (ships with opencv-python, no download)."""
    import cv2

    if not hasattr(cv2, "CascadeClassifier"):
        raise RuntimeError(f"OpenCV {cv2.__version__} has no CascadeClassifier (OpenCV 5 dropped "
                           "the Haar cascades); set engine.options.face_detector to a YuNet ONNX "
                           "file (face_detection_yunet_*.onnx) for a face track")
    path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise RuntimeError(f"{path}: OpenCV's face cascade could not be loaded; reinstall "
                           "opencv-python (it ships the cascade files)")

    def detect(frame: np.ndarray) -> list[tuple[int, int, int, int]]:
        gray = cv2.equalizeHist(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))
        found = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=4,
                                         minSize=(min_size, min_size))
        return [tuple(int(v) for v in box) for box in found]

    return detect


def yunet_detector(model: str, threshold: float = 0.6) -> Detector:
    """cv2.FaceDetectorYN with a local ONNX file (engine option `face_detector`)."""
    import cv2

    if not Path(model).is_file():
        raise FileNotFoundError(f"face_detector {model!r}: no such file; give the path of a "
                                "YuNet ONNX model, or leave the option unset for the Haar cascade")
    net = cv2.FaceDetectorYN.create(model, "", (320, 320), threshold)

    def detect(frame: np.ndarray) -> list[tuple[int, int, int, int]]:
        h, w = frame.shape[:2]
        net.setInputSize((w, h))
        _, faces = net.detect(np.ascontiguousarray(frame[:, :, ::-1]))
        return [] if faces is None else [tuple(int(v) for v in f[:4]) for f in faces]

    return detect


def track_faces(frames: Sequence[np.ndarray], detector: Detector, smoothing: float = 0.6,
                margin: float = 1.6) -> FaceTrack:
    """The smoothed face square per frame. `smoothing`: weight of the previous box (0: raw
    detections). `margin`: crop side over detected face side (the encoder wants the whole head)."""
    return track_boxes([list(detector(frame)) for frame in frames], frames[0].shape[:2],
                       smoothing, margin)


def track_boxes(detections: Sequence[Sequence[tuple[float, float, float, float]]],
                shape: tuple[int, int], smoothing: float = 0.6, margin: float = 1.6
                ) -> FaceTrack:
    """track_faces on face boxes found already (one list of (x, y, w, h) per frame, e.g.
    `pose_face_boxes`); `shape`: the frames' (height, width)."""
    raw: list[tuple[float, float, float] | None] = []
    for boxes in detections:
        if not boxes:
            raw.append(None)
            continue
        x, y, w, h = max(boxes, key=lambda b: b[2] * b[3])
        raw.append((x + w / 2, y + h / 2, max(w, h) * margin))
    notes: list[str] = []
    detected = [r is not None for r in raw]
    first = next((r for r in raw if r is not None), None)
    if first is None:
        h, w = shape
        first = (w / 2, h / 2, float(min(w, h)))
        notes.append(f"no face found in any of {len(raw)} driving frames; the face video is "
                     "the frame centre")
    missing = [i for i, r in enumerate(raw) if r is None]
    if missing and len(missing) < len(raw):
        notes.append(f"no face found in {len(missing)} of {len(raw)} driving frames (first: "
                     f"frame {missing[0]}); those frames reuse the previous face box")
    targets, previous = [], first
    for r in raw:
        previous = previous if r is None else r
        targets.append(previous)
    return FaceTrack(_smooth_without_lag(targets, smoothing), detected, notes)


def _smooth_without_lag(boxes: list[tuple[float, float, float]], weight: float
                        ) -> list[tuple[float, float, float]]:
    """Exponential smoothing forwards, then backwards over the result: the whole clip is known,
    so the track can have no lag (one pass trails a moving head by weight / (1 - weight)
    frames of its motion, enough to crop it off at 6 px a frame). The ends are padded with the
    straight line fitted to the track's first (last) frames, so steady motion stays exact up to
    the last frame and the end frames are smoothed like the rest (padding with the raw end box
    would pin them to its jitter)."""
    if weight <= 0 or len(boxes) < 2:
        return list(boxes)
    track = np.asarray(boxes, np.float64)
    pad = int(np.ceil(3 / (1 - weight)))
    fit = min(len(track), pad + 1)
    ahead = np.arange(-pad, 0, dtype=np.float64)
    behind = np.arange(len(track), len(track) + pad, dtype=np.float64)
    padded = np.concatenate([_line(np.arange(fit), track[:fit], ahead), track,
                             _line(np.arange(len(track) - fit, len(track)), track[-fit:], behind)])
    for _ in range(2):  # forwards, then (reversed) backwards; two reversals restore the order
        for i in range(1, len(padded)):
            padded[i] = weight * padded[i - 1] + (1 - weight) * padded[i]
        padded = padded[::-1].copy()
    return [tuple(float(v) for v in box) for box in padded[pad:pad + len(track)]]


def _line(times: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The least-squares line through (times, values) per column, evaluated at `at`."""
    slope, offset = np.polyfit(times, values, 1)
    return offset + np.outer(at, slope)


def pose_face_boxes(keypoints: np.ndarray, min_score: float = MIN_SCORE
                    ) -> list[list[tuple[float, float, float, float]]]:
    """Face boxes (x, y, w, h) from COCO body keypoints (N, K, 3) (engine.pose.estimate): a
    square around the confident head points (nose, eyes, ears), as wide as the farthest two of
    them or 2.5 eye distances (a face seen from the side shows one ear), and at least a third of
    the shoulder width. A frame with fewer than two confident head points has no box."""
    result: list[list[tuple[float, float, float, float]]] = []
    for points in np.asarray(keypoints, np.float32):
        head = points[:5]
        sure = head[head[:, 2] >= min_score, :2]
        if len(sure) < 2:
            result.append([])
            continue
        spread = float(max(np.hypot(*(a - b)) for i, a in enumerate(sure) for b in sure[i + 1:]))
        if spread < MIN_FACE_PX:  # head points on top of each other: no size to go by
            result.append([])
            continue
        side = spread
        if head[1, 2] >= min_score and head[2, 2] >= min_score:
            side = max(side, 2.5 * float(np.hypot(*(head[1, :2] - head[2, :2]))))
        if len(points) > 6 and min(points[5, 2], points[6, 2]) >= min_score:
            side = max(side, float(np.hypot(*(points[5, :2] - points[6, :2]))) / 3)
        cx, cy = sure.mean(axis=0)
        result.append([(float(cx - side / 2), float(cy - side / 2), side, side)])
    return result


def crop_square(frame: np.ndarray, box: tuple[float, float, float], size: int) -> np.ndarray:
    """`size`x`size` crop of the square `box` (centre x, centre y, side), shifted inside the
    frame (and shrunk to fit a frame smaller than it)."""
    import cv2

    h, w = frame.shape[:2]
    side = max(1, int(round(min(box[2], w, h))))
    left = int(round(min(max(box[0] - side / 2, 0), w - side)))
    top = int(round(min(max(box[1] - side / 2, 0), h - side)))
    crop = frame[top:top + side, left:left + side]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if side > size
                      else cv2.INTER_LINEAR)


def no_detector(frame: np.ndarray) -> list[tuple[int, int, int, int]]:
    return []


def default_detector() -> tuple[Detector, str | None]:
    """The Haar cascade where this OpenCV has it; else no detector (the frame centre) and why."""
    try:
        return haar_detector(), None
    except RuntimeError as exc:
        return no_detector, str(exc)


def face_video(frames: Sequence[np.ndarray], size: int, detector: Detector | None = None,
               smoothing: float = 0.6, keypoints: np.ndarray | None = None
               ) -> tuple[list[np.ndarray], list[str]]:
    """The face crops (size x size) of `frames` and the notes on frames without a face. With
    `keypoints` (the performer's body keypoints per frame, engine.pose.estimate), the face
    follows the head keypoints and no detector runs."""
    why = None
    if keypoints is not None:
        track = track_boxes(pose_face_boxes(keypoints), frames[0].shape[:2], smoothing)
    else:
        if detector is None:
            detector, why = default_detector()
        track = track_faces(frames, detector, smoothing)
    if why:
        track.notes.insert(0, why)
    return [crop_square(f, b, size) for f, b in zip(frames, track.boxes)], track.notes

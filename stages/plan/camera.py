"""Camera paths: the camera state at any time of a shot, from a constant move or keyframes.

A constant move (`camera: {zoom: 0.1}`) goes from rest at the shot's first frame to the given
values at its last frame. Keyframes (`camera: [{at: 0s, pan_x: 0}, {at: 6s, pan_x: 0.2}]`) give
absolute states; values a key omits carry over from the key before (zero before the first);
`ease` shapes the move into that key. Before the first key and after the last, the camera holds.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Sequence

from engine.base import CameraState
from stages.storyboard.schema.camera import CAMERA_KEYS, Camera, CameraKey, CameraMove, camera_keys

_FIELDS = tuple(f.name for f in fields(CameraState))


def ease(kind: str, t: float) -> float:
    t = min(max(t, 0.0), 1.0)
    if kind == "in":
        return t * t
    if kind == "out":
        return 1.0 - (1.0 - t) ** 2
    if kind == "in_out":
        return t * t * (3.0 - 2.0 * t)
    return t


def _lerp(a: CameraState, b: CameraState, w: float) -> CameraState:
    # Every field (as_tuple drops the 2.5D values when they are zero).
    return CameraState(**{name: getattr(a, name) + (getattr(b, name) - getattr(a, name)) * w
                          for name in _FIELDS})


def _key_states(keys: Sequence[CameraKey]) -> list[tuple[float, CameraState, str]]:
    current = {name: 0.0 for name in CAMERA_KEYS}
    out = []
    for key in keys:
        for name in CAMERA_KEYS:
            value = getattr(key, name)
            if value is not None:
                current[name] = value
        out.append((key.at, CameraState(**current), key.ease))
    return out


def camera_at(camera: Camera | None, t: float, shot_seconds: float) -> CameraState:
    """The camera state `t` seconds into a shot that lasts `shot_seconds` (first to last frame)."""
    if camera is None:
        return CameraState()
    if isinstance(camera, CameraMove):
        target = CameraState(**{name: getattr(camera, name) for name in CAMERA_KEYS})
        progress = t / shot_seconds if shot_seconds > 0 else 1.0
        return _lerp(CameraState(), target, ease(camera.ease, progress))
    keys = _key_states(camera_keys(camera) or [])
    if not keys:
        return CameraState()
    if t <= keys[0][0]:
        return keys[0][1]
    for (t0, s0, _), (t1, s1, kind) in zip(keys, keys[1:]):
        if t <= t1:
            return _lerp(s0, s1, ease(kind, (t - t0) / (t1 - t0)))
    return keys[-1][1]


def camera_path(
    camera: Camera | None, start_frame: int, frames: int, fps: float, shot_seconds: float
) -> tuple[CameraState, ...]:
    """States for `frames` consecutive frames starting at shot frame `start_frame`."""
    return tuple(camera_at(camera, (start_frame + i) / fps, shot_seconds) for i in range(frames))

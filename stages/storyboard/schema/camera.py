"""Camera moves in a storyboard: a move (`camera: {pan_x: 0.2, ease: in_out}`) or keyframes
(`camera: {keys: [...]}`), the value ranges, and where the move is applied (engine or post).
stages.storyboard.schema uses these in shots and re-exports them."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, field_validator

from stages.storyboard.schema.types import TimePoint, _Model


# Documented limits (README "Storyboard limits"): beyond them a storyboard is almost surely a typo.
# Camera value ranges: far enough for any real move, near enough to catch a unit mistake
# (rotate is degrees, pans are fractions of the frame).
CAMERA_RANGES: dict[str, tuple[float, float]] = {
    "pan_x": (-4.0, 4.0),
    "pan_y": (-4.0, 4.0),
    "zoom": (-0.9, 9.0),
    "rotate": (-720.0, 720.0),
    "tilt": (-60.0, 60.0),
    # 2.5D moves (need `depth:` on the shot; units in engine.depth.camera3d). A dolly of 1 would
    # put the camera on the subject.
    "dolly": (-4.0, 0.9),
    "truck": (-4.0, 4.0),
    "pedestal": (-4.0, 4.0),
    "orbit": (-90.0, 90.0),
    "dolly_zoom": (-4.0, 0.9),
    "focus": (0.0, 1.0),
    "aperture": (0.0, 1.0),
}
CAMERA_KEYS = tuple(CAMERA_RANGES)
# The keys that move the camera in 3D or focus it: they need a depth map.
DEPTH_CAMERA_KEYS = ("dolly", "truck", "pedestal", "orbit", "dolly_zoom", "focus", "aperture")
CAMERA_UNITS: dict[str, str] = {
    "pan_x": "fraction of the frame", "pan_y": "fraction of the frame",
    "zoom": "fraction of the frame", "rotate": "degrees", "tilt": "degrees",
    "dolly": "fraction of the subject distance", "truck": "frame widths at the subject",
    "pedestal": "frame heights at the subject", "orbit": "degrees",
    "dolly_zoom": "fraction of the subject distance",
    "focus": "depth map value, 1 = nearest", "aperture": "0 = all sharp, 1 = strongest blur",
}


def _check_camera_value(name: str, value: float) -> float:
    low, high = CAMERA_RANGES[name]
    if not (low <= value <= high):
        raise ValueError(f"{name}={value!r} is out of range [{low:g}, {high:g}] "
                         f"({CAMERA_UNITS[name]})")
    return value


Ease = Literal["linear", "in", "out", "in_out"]


# How the camera path reaches the pixels: "engine" lets the engine realise it (exactly on the
# preview, as a guide video on VACE / v2v, as prompt words elsewhere); "post" also warps the
# generated frames exactly along the path after generation, on any engine.
CameraApply = Literal["engine", "post"]


class CameraMove(_Model):
    """A constant move: the camera reaches these values at the end of the shot, from zero."""

    apply: CameraApply = "engine"
    """engine: the engine realises the move (exactly on preview, as a guide video on VACE/v2v,
    as prompt words elsewhere); post: also warp the generated frames exactly along the path."""
    pan_x: float = 0.0
    """Horizontal pan by the end of the shot, in frame widths (+ right), -4..4."""
    pan_y: float = 0.0
    """Vertical pan by the end of the shot, in frame heights (+ down), -4..4."""
    zoom: float = 0.0
    """Zoom by the end of the shot: 0.1 is 10% closer, negative pulls back; -0.9..9."""
    rotate: float = 0.0
    """Roll by the end of the shot, in degrees (+ clockwise), -720..720."""
    tilt: float = 0.0
    """Tilt by the end of the shot, in degrees, -60..60."""
    dolly: float = 0.0
    """Camera forward (+) / back by the end of the shot, as a fraction of the subject distance;
    near things grow faster than far ones; -4..0.9; needs `depth:` on the shot."""
    truck: float = 0.0
    """Camera sideways (+ right) by the end of the shot, in frame widths at the subject, with
    parallax; -4..4; needs `depth:`."""
    pedestal: float = 0.0
    """Camera up (+) / down by the end of the shot, in frame heights at the subject, with
    parallax; -4..4; needs `depth:`."""
    orbit: float = 0.0
    """Degrees the camera circles the subject by the end of the shot (+ to the right), looking
    at it; -90..90; needs `depth:`."""
    dolly_zoom: float = 0.0
    """Vertigo effect: dolly by this fraction of the subject distance while zooming so the
    subject keeps its size; -4..0.9; needs `depth:`."""
    focus: float = 0.0
    """Depth in focus by the end of the shot, as a depth map value (1 = nearest, 0 =
    farthest); only with aperture > 0; needs `depth:`."""
    aperture: float = 0.0
    """Depth-of-field strength by the end of the shot: 0 = all sharp, 1 = strongest blur;
    needs `depth:`."""
    ease: Ease = "linear"
    """Easing of the move: linear, in, out or in_out."""

    @field_validator(*CAMERA_KEYS)
    @classmethod
    def _in_range(cls, value: float, info) -> float:
        return _check_camera_value(info.field_name, value)


class CameraKey(_Model):
    """A keyframe: the camera state at time `at`; omitted values carry over from the last key."""

    at: TimePoint
    """Time of the key from the start of the shot: '2s', '500ms' or seconds."""
    pan_x: float | None = None
    """Horizontal pan at this key, in frame widths (+ right); omitted: carried over."""
    pan_y: float | None = None
    """Vertical pan at this key, in frame heights (+ down); omitted: carried over."""
    zoom: float | None = None
    """Zoom at this key (0.1: 10% closer); omitted: carried over."""
    rotate: float | None = None
    """Roll at this key, in degrees; omitted: carried over."""
    tilt: float | None = None
    """Tilt at this key, in degrees; omitted: carried over."""
    dolly: float | None = None
    """Camera forward (+) / back at this key, as a fraction of the subject distance; needs
    `depth:`; omitted: carried over."""
    truck: float | None = None
    """Camera sideways (+ right) at this key, in frame widths at the subject; needs `depth:`;
    omitted: carried over."""
    pedestal: float | None = None
    """Camera up (+) / down at this key, in frame heights at the subject; needs `depth:`;
    omitted: carried over."""
    orbit: float | None = None
    """Degrees around the subject at this key (+ to the right); needs `depth:`; omitted:
    carried over."""
    dolly_zoom: float | None = None
    """Vertigo dolly at this key (fraction of the subject distance, subject keeps its size);
    needs `depth:`; omitted: carried over."""
    focus: float | None = None
    """Depth in focus at this key, as a depth map value (1 = nearest); a focus pull keyframes
    it; needs `depth:`; omitted: carried over."""
    aperture: float | None = None
    """Depth-of-field strength at this key (0 = all sharp, 1 = strongest blur); needs
    `depth:`; omitted: carried over."""
    ease: Ease = "linear"
    """Easing of the move from the previous key into this one: linear, in, out or in_out."""

    @field_validator(*CAMERA_KEYS)
    @classmethod
    def _in_range(cls, value: float | None, info) -> float | None:
        return None if value is None else _check_camera_value(info.field_name, value)


class CameraKeyframes(_Model):
    """Keyframes with options: `camera: {apply: post, keys: [{at: 0s, ...}, ...]}`."""

    apply: CameraApply = "engine"
    """engine: the engine realises the path; post: also warp the generated frames along it."""
    keys: list[CameraKey] = Field(min_length=1)
    """The keyframes, `{at: 0s, pan_x: 0.0}`, in time order."""


def _camera_kind(value: Any) -> str | None:
    # Pick the form from the value's shape, so a bad value gets that form's errors only.
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, CameraKeyframes) or (isinstance(value, dict) and "keys" in value):
        return "keyframes"
    if isinstance(value, (dict, CameraMove)):
        return "move"
    return None


Camera = Annotated[
    Union[Annotated[CameraMove, Tag("move")], Annotated[list[CameraKey], Tag("list")],
          Annotated[CameraKeyframes, Tag("keyframes")]],
    Discriminator(_camera_kind),
]


def camera_keys(camera: Any) -> list[CameraKey] | None:
    """The keyframe list of a keyframed camera (either form), else None."""
    if isinstance(camera, CameraKeyframes):
        return camera.keys
    return camera if isinstance(camera, list) else None


def camera_apply(camera: Any) -> str:
    return getattr(camera, "apply", "engine") if camera is not None else "engine"


def camera_uses_depth(camera: Any) -> list[tuple]:
    """Where a camera sets a 2.5D value, as key paths below `camera`: ("dolly",),
    ("keys", 1, "orbit"), (0, "focus"); empty for a 2D-only or absent camera."""
    if camera is None:
        return []
    keys = camera_keys(camera)
    if keys is None:
        return [(name,) for name in DEPTH_CAMERA_KEYS if getattr(camera, name) != 0.0]
    prefix = ("keys",) if isinstance(camera, CameraKeyframes) else ()
    return [prefix + (i, name) for i, key in enumerate(keys) for name in DEPTH_CAMERA_KEYS
            if getattr(key, name) is not None]

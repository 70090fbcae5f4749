"""The storyboard schema: typed models of the YAML format in DESIGN.md.

These models check one value at a time (types, ranges, unknown keys). Checks that need the
whole storyboard, the engine or the file system (duplicate ids, chaining, images on disk, frame
rules) live in `stages.storyboard.validate`, which also turns every problem into one readable line.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from stages.storyboard.units import parse_duration, parse_resolution
from stages.storyboard.schema_types import (
    MAX_SHOT_SECONDS,
    MAX_FRAMES,
    MAX_FPS,
    MIN_SIDE,
    MAX_SIDE,
    MAX_SEED,
    SHOT_ID,
    ProfileName,
    Duration,
    TimePoint,
    Frames,
    Seed,
    Text,
    ImagePath,
    MAX_SHOTS,
    _Model,
    Guidance,
    _duration,
    _time,
    _control_free,
    _TEXT_CONTROL,
    _ANY_CONTROL,
)
from stages.storyboard.schema_cast import (
    CAST_NAME,
    CastMember,
    CastName,
    ImageSource,
    KeyframeGen,
    MAX_REFERENCES,
    image_file,
    image_generated,
)

# Names importers have always found here (the value types moved to schema_types), and the cast
# and keyframe models (schema_cast), so `from stages.storyboard.schema import ...` sees them all.
_REEXPORTED = (MAX_FRAMES, MAX_SEED, _duration, _time, _control_free, _TEXT_CONTROL, _ANY_CONTROL,
               CAST_NAME, KeyframeGen, MAX_REFERENCES, image_file, image_generated)


# Documented limits (README "Storyboard limits"): beyond them a storyboard is almost surely a typo.
# Camera value ranges: far enough for any real move, near enough to catch a unit mistake
# (rotate is degrees, pans are fractions of the frame).
CAMERA_RANGES: dict[str, tuple[float, float]] = {
    "pan_x": (-4.0, 4.0),
    "pan_y": (-4.0, 4.0),
    "zoom": (-0.9, 9.0),
    "rotate": (-720.0, 720.0),
    "tilt": (-60.0, 60.0),
}
CAMERA_KEYS = tuple(CAMERA_RANGES)


def _check_camera_value(name: str, value: float) -> float:
    low, high = CAMERA_RANGES[name]
    if not (low <= value <= high):
        unit = "degrees" if name in ("rotate", "tilt") else "fraction of the frame"
        raise ValueError(f"{name}={value!r} is out of range [{low:g}, {high:g}] ({unit})")
    return value


Ease = Literal["linear", "in", "out", "in_out"]


# How the camera path reaches the pixels: "engine" lets the engine realise it (exactly on the
# preview, as a guide video on VACE / v2v, as prompt words elsewhere); "post" also warps the
# generated frames exactly along the path after generation, on any engine.
CameraApply = Literal["engine", "post"]


class CameraMove(_Model):
    """A constant move: the camera reaches these values at the end of the shot, from zero."""

    apply: CameraApply = "engine"
    pan_x: float = 0.0
    pan_y: float = 0.0
    zoom: float = 0.0
    rotate: float = 0.0
    tilt: float = 0.0
    ease: Ease = "linear"

    @field_validator(*CAMERA_KEYS)
    @classmethod
    def _in_range(cls, value: float, info) -> float:
        return _check_camera_value(info.field_name, value)


class CameraKey(_Model):
    """A keyframe: the camera state at time `at`; omitted values carry over from the last key."""

    at: TimePoint
    pan_x: float | None = None
    pan_y: float | None = None
    zoom: float | None = None
    rotate: float | None = None
    tilt: float | None = None
    ease: Ease = "linear"  # easing of the move from the previous key into this one

    @field_validator(*CAMERA_KEYS)
    @classmethod
    def _in_range(cls, value: float | None, info) -> float | None:
        return None if value is None else _check_camera_value(info.field_name, value)


class CameraKeyframes(_Model):
    """Keyframes with options: `camera: {apply: post, keys: [{at: 0s, ...}, ...]}`."""

    apply: CameraApply = "engine"
    keys: list[CameraKey] = Field(min_length=1)


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


def bridge_id(before: str, after: str) -> str:
    """The name of the clip a generated transition renders between two shots."""
    return f"{before}__{after}"


def camera_apply(camera: Any) -> str:
    return getattr(camera, "apply", "engine") if camera is not None else "engine"


class Lora(_Model):
    """A LoRA file (relative to the storyboard) with its strength per expert: `strength` for the
    first (or only) denoiser, `strength_2` for Wan 2.2's low-noise expert (default: same)."""

    path: ImagePath
    strength: Annotated[float, Field(ge=-4.0, le=4.0)] = 1.0
    strength_2: Annotated[float, Field(ge=-4.0, le=4.0)] | None = None




class GenerationKeys(_Model):
    """Generation knobs a segment, a shot or `defaults` may set; the innermost wins. Engines
    declare which they honour (README "Engines"); others are ignored with a warning."""

    steps: Annotated[int, Field(ge=1, le=500, strict=True)] | None = None
    cfg: Guidance | None = None
    cfg_2: Guidance | None = None           # second expert's guidance (Wan 2.2 A14B)
    flow_shift: Annotated[float, Field(gt=0.0, le=100.0)] | None = None
    boundary: Annotated[float, Field(ge=0.0, le=1.0)] | None = None  # expert switch
    loras: list[Lora] | None = None
    denoise: Annotated[float, Field(gt=0.0, le=1.0)] | None = None  # v2v strength
    embedded_guidance: Guidance | None = None  # HunyuanVideo's distilled guidance
    # Flow-matching scheduler for the call (engine.samplers): unipc | euler | dpmpp.
    sampler: Literal["unipc", "euler", "dpmpp"] | None = None


ChainMode = Literal["last_frame", "overlap", "latent", "svi"]
ColorMatch = Literal["anchor", "previous", "none"]
OverlapPreset = Literal["standard", "fast_motion", "static"]


class Chain(_Model):
    """How the segments of a long shot hand over (README "Long shots"): `chain: overlap` or
    `chain: {mode: overlap, preset: fast_motion, color_match: anchor}`.

    - last_frame: each segment starts from the previous one's last frame;
    - overlap: each segment is generated over the previous one's last `overlap` frames and the
      two are joined with motion-guided blending (stages.render.overlap_join);
    - latent: the previous segment's last latent frame is handed over, no VAE round trip;
    - svi: anchor + motion latents + end conditioning (Stable Video Infinity).
    Unset overlap parameters come from the preset (default `standard`).
    """

    mode: ChainMode = "last_frame"
    preset: OverlapPreset | None = None
    overlap: Annotated[int, Field(ge=8, le=24, strict=True)] | None = None
    blend: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    motion_weight: Annotated[float, Field(ge=0.2, le=0.4)] | None = None
    mask_sigma: Annotated[float, Field(ge=0.25, le=0.5)] | None = None
    step_gain: Annotated[float, Field(ge=0.3, le=0.7)] | None = None
    # svi: latent frames of the previous segment given as motion context (0: anchor + end only).
    motion_latents: Annotated[int, Field(ge=0, le=4, strict=True)] = 1
    # The shot's anchor frame (identity reference for svi, colour reference for color_match):
    # default the shot's first frame.
    anchor: ImagePath | None = None
    color_match: ColorMatch = "anchor"
    color_strength: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"mode": value} if isinstance(value, str) else value


def _schedule_time(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds < 0:
        raise ValueError(f"{value!r} is negative; prompt times start at 0s")
    return seconds


def _prompt_schedule(value: Any) -> Any:
    """`prompts: {0s: ..., 4s: ...}` -> {seconds: prompt}, in time order."""
    if not isinstance(value, dict):
        return value  # pydantic reports the type
    out: dict[float, Any] = {}
    for key, prompt in value.items():
        try:
            seconds = _schedule_time(key)
        except ValueError as exc:
            raise ValueError(f"prompt time {key!r}: {exc}") from None
        if seconds in out:
            raise ValueError(f"two prompts at {seconds:g}s")
        out[seconds] = prompt
    return dict(sorted(out.items()))


PromptSchedule = Annotated[dict[float, Text], BeforeValidator(_prompt_schedule),
                           Field(min_length=1, max_length=500)]


class Transition(_Model):
    # interpolated: an optical-flow morph over the same frames a crossfade would blend;
    # generated: a first-last-frame clip of `duration` rendered by the engine from this shot's
    # last frame to the next shot's first (`prompt`: default the next shot's prompt).
    type: Literal["cut", "crossfade", "interpolated", "generated"] = "cut"
    duration: Duration = 0.5
    prompt: Text | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value


class Segment(GenerationKeys):
    """One generation call inside a long shot; chained to the previous segment's last frame."""

    prompt: Text | None = None
    negative: Text | None = None
    duration: Duration | None = None
    frames: Frames | None = None
    seed: Seed | None = None
    end_image: ImagePath | None = None


class ShotDefaults(GenerationKeys):
    """Keys a storyboard's `defaults:` may set for every shot."""

    prompt: Text | None = None
    negative: Text | None = None
    duration: Duration | None = None
    frames: Frames | None = None
    camera: Camera | None = None
    transition: Transition | None = None
    image: ImageSource | None = None        # a path, or {generate: ...} (a generated keyframe)
    end_image: ImageSource | None = None
    cast: list[CastName] | None = Field(default=None, max_length=16)  # members the shot shows
    source_video: ImagePath | None = None   # v2v: the video to restyle (relative path)
    driving_video: ImagePath | None = None  # animate: the pose video to perform
    chain: Chain | None = None              # how the shot's segments hand over
    profile: ProfileName | None = None      # draft | final | two_pass | ... (stages.plan.profiles)


class Shot(ShotDefaults):
    id: str
    start: Literal["chain", "none"] | None = None
    segments: list[Segment] | None = Field(default=None, min_length=1)
    seed: Seed | None = None
    # Timecoded prompts: each applies from the segment boundary nearest its time (the plan
    # reports the snapping); a segment's own prompt wins.
    prompts: PromptSchedule | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _valid_id(cls, value: Any) -> Any:
        # fullmatch: `$` alone would accept a trailing newline (a YAML block scalar).
        if not isinstance(value, str) or not SHOT_ID.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a valid shot id; use 1-64 of a-z, 0-9, '_' and '-'"
            )
        return value


class Output(_Model):
    fps: Annotated[float, Field(gt=0, le=240)] | None = None
    codec: Literal["h264", "h265"] = "h264"
    crf: Annotated[int, Field(ge=0, le=51, strict=True)] = 18
    preset: Literal[
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower"
    ] = "medium"


def _signed_seconds(value: Any) -> float:
    seconds = parse_duration(value)
    if abs(seconds) > 24 * 3600:
        raise ValueError(f"{value!r} is more than a day; give seconds like '1.5s' or '-2s'")
    return seconds


def _fade(value: Any) -> float:
    seconds = parse_duration(value)
    if not 0 <= seconds <= MAX_SHOT_SECONDS:
        raise ValueError(f"{value!r} must be between 0s and {MAX_SHOT_SECONDS:g}s")
    return seconds


class Audio(_Model):
    """The episode's soundtrack (stages.render.audio): `offset` > 0 delays it, < 0 skips its start."""

    path: ImagePath  # relative to the storyboard file
    offset: Annotated[float, BeforeValidator(_signed_seconds)] = 0.0
    fade_in: Annotated[float, BeforeValidator(_fade)] = 0.0
    fade_out: Annotated[float, BeforeValidator(_fade)] = 0.0
    volume: Annotated[float, Field(ge=0.0, le=4.0)] = 1.0


# A post chain item: a preset name from conf/post/ or an inline stage config ({stage: ...}).
PostItem = Union[Annotated[str, Field(min_length=1, strict=True)], dict[str, Any]]


class Storyboard(_Model):
    title: Text | None = None
    fps: Annotated[int, Field(ge=1, le=MAX_FPS, strict=True)] | None = None
    resolution: tuple[int, int] | None = None
    seed: Seed = 0
    # The render's profile (stages.plan.profiles); the only place for one that sets engine options.
    profile: ProfileName | None = None
    defaults: ShotDefaults | None = None
    shots: list[Shot] = Field(min_length=1, max_length=MAX_SHOTS)
    post: list[PostItem] | None = None
    # Recurring characters, props, places: name -> member (shots list them in `cast:`).
    cast: Annotated[dict[CastName, CastMember], Field(max_length=64)] | None = None
    output: Output = Output()
    audio: Audio | None = None
    # Engine that renders a segment when the configured one fails for a reason other than a bad
    # storyboard (out of memory after the degrade ladder, weights that fail to load).
    fallback: Annotated[str, Field(min_length=1, max_length=64, strict=True)] | None = None

    @field_validator("resolution", mode="before")
    @classmethod
    def _resolution(cls, value: Any) -> Any:
        return None if value is None else parse_resolution(value)

    @field_validator("resolution")
    @classmethod
    def _resolution_rules(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is None:
            return value
        width, height = value
        for side in (width, height):
            if not MIN_SIDE <= side <= MAX_SIDE:
                raise ValueError(
                    f"{width}x{height} is out of range; each side must be {MIN_SIDE}..{MAX_SIDE}"
                )
        return value

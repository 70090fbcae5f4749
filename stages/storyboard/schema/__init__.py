"""The storyboard schema: typed models of the YAML format in DESIGN.md.

These models check one value at a time (types, ranges, unknown keys). Checks that need the
whole storyboard, the engine or the file system (duplicate ids, chaining, images on disk, frame
rules) live in `stages.storyboard.validate`, which also turns every problem into one readable line.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import (
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)

from stages.storyboard.units import parse_duration, parse_resolution
from stages.storyboard.schema.types import (
    MAX_SHOT_SECONDS,
    MAX_FRAMES,
    MAX_FPS,
    MIN_SIDE,
    MAX_SIDE,
    MAX_SEED,
    SHOT_ID,
    ProfileName,
    Duration,
    Frames,
    Seed,
    Text,
    ImagePath,
    MAX_SHOTS,
    _Model,
    Guidance,
    NamesOf,
    _duration,
    _time,
    _control_free,
    _TEXT_CONTROL,
    _ANY_CONTROL,
)
from stages.storyboard.schema.camera import Camera
from stages.storyboard.schema.depth import DepthRef
from stages.storyboard.schema.audio import ReactiveMapping
from stages.storyboard.schema.control import Control
from stages.storyboard.schema.cast import (
    CAST_NAME,
    CastMember,
    CastName,
    ImageSource,
    KeyframeGen,
    MAX_REFERENCES,
    image_file,
    image_generated,
)

# Names importers have always found here (the value types in schema/types.py), and the cast
# and keyframe models (schema/cast.py), so `from stages.storyboard.schema import ...` sees them all.
_REEXPORTED = (MAX_FRAMES, MAX_SEED, _duration, _time, _control_free, _TEXT_CONTROL, _ANY_CONTROL,
               CAST_NAME, KeyframeGen, MAX_REFERENCES, image_file, image_generated)


def bridge_id(before: str, after: str) -> str:
    """The name of the clip a generated transition renders between two shots."""
    return f"{before}__{after}"


class Lora(_Model):
    """A LoRA file (relative to the storyboard) with its strength per expert: `strength` for the
    first (or only) denoiser, `strength_2` for Wan 2.2's low-noise expert (default: same)."""

    path: ImagePath
    """The LoRA file (.safetensors), relative to the storyboard."""
    strength: Annotated[float, Field(ge=-4.0, le=4.0)] = 1.0
    """Strength on the first (or only) denoiser, -4..4."""
    strength_2: Annotated[float, Field(ge=-4.0, le=4.0)] | None = None
    """Strength on Wan 2.2's low-noise expert; default: `strength`."""




class GenerationKeys(_Model):
    """Generation knobs a segment, a shot or `defaults` may set; the innermost wins. Engines
    declare which they honour (README "Engines"); others are ignored with a warning."""

    steps: Annotated[int, Field(ge=1, le=500, strict=True)] | None = None
    """Sampling steps, 1-500; default: the engine's (or the profile's)."""
    cfg: Guidance | None = None
    """Classifier-free guidance scale, 0-30."""
    cfg_2: Guidance | None = None
    """Guidance of the second (low-noise) expert of Wan 2.2 A14B; default: `cfg`."""
    flow_shift: Annotated[float, Field(gt=0.0, le=100.0)] | None = None
    """Flow-matching scheduler shift (Wan: about 3 at 480p, 5 at 720p)."""
    boundary: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    """Wan 2.2 A14B: fraction of the noise schedule at which the low-noise expert takes over."""
    loras: list[Lora] | None = None
    """LoRAs to apply: `[{path: loras/style.safetensors, strength: 0.8}]`."""
    denoise: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    """Video-to-video strength: how much of the source video is regenerated (0-1]."""
    embedded_guidance: Guidance | None = None
    """HunyuanVideo's distilled (embedded) guidance scale."""
    sampler: Literal["unipc", "euler", "dpmpp"] | None = None
    """Flow-matching scheduler for the call: unipc, euler or dpmpp; default: the engine's."""


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
    """How segments hand over: last_frame, overlap (motion-guided blending), latent or svi."""
    preset: OverlapPreset | None = None
    """overlap: parameter set for unset values: standard, fast_motion or static."""
    overlap: Annotated[int, Field(ge=8, le=24, strict=True)] | None = None
    """overlap: frames each segment re-generates over the previous one's end, 8-24."""
    blend: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    """overlap: how strongly the overlapping frames are blended, 0-1."""
    motion_weight: Annotated[float, Field(ge=0.2, le=0.4)] | None = None
    """overlap: weight of optical-flow motion in the blend mask, 0.2-0.4."""
    mask_sigma: Annotated[float, Field(ge=0.25, le=0.5)] | None = None
    """overlap: width of the Gaussian spatial blend mask, 0.25-0.5."""
    step_gain: Annotated[float, Field(ge=0.3, le=0.7)] | None = None
    """overlap: how fast the blend moves from one segment to the next per frame, 0.3-0.7."""
    motion_latents: Annotated[int, Field(ge=0, le=4, strict=True)] = 1
    """svi: latent frames of the previous segment given as motion context (0: anchor + end only)."""
    anchor: ImagePath | None = None
    """The shot's anchor frame (identity reference for svi, colour reference for color_match);
    default: the shot's first frame."""
    color_match: ColorMatch = "anchor"
    """Colour drift correction of each segment: towards the anchor, the previous segment, or none."""
    color_strength: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    """Strength of the colour matching, 0-1."""

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
    """Into the next shot: `transition: crossfade` or `{type: crossfade, duration: 0.5s}`."""

    type: Literal["cut", "crossfade", "interpolated", "generated"] = "cut"
    """cut; crossfade; interpolated: an optical-flow morph over the frames a crossfade would
    blend; generated: a first-last-frame clip rendered by the engine between the two shots."""
    duration: Duration = 0.5
    """Length of the transition: '0.5s', '500ms' or seconds."""
    prompt: Text | None = None
    """generated: the prompt of the bridging clip; default: the next shot's prompt."""

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value


class Segment(GenerationKeys):
    """One generation call inside a long shot; chained to the previous segment's last frame."""

    prompt: Text | None = None
    """What this segment shows; default: the shot's prompt."""
    negative: Text | None = None
    """Negative prompt of this segment; default: the shot's."""
    duration: Duration | None = None
    """Length: '3s', '500ms' or seconds (snapped to the engine's frame rule)."""
    frames: Frames | None = None
    """Length in frames, instead of `duration`."""
    seed: Seed | None = None
    """Seed of this segment; default: derived from the shot's seed and the segment index."""
    end_image: ImagePath | None = None
    """Last frame of this segment (first-last-frame generation), relative to the storyboard."""


class ShotDefaults(GenerationKeys):
    """Keys a storyboard's `defaults:` may set for every shot."""

    prompt: Text | None = None
    """What the shot shows; `{name}` inserts a cast member's description."""
    negative: Text | None = None
    """What the engine should avoid ("blurry, low quality")."""
    duration: Duration | None = None
    """Length: '5s', '500ms' or seconds; snapped to the engine's frame rule, with a warning."""
    frames: Frames | None = None
    """Length in frames (e.g. 81), instead of `duration`."""
    camera: Camera | None = None
    """Camera move: constant `{zoom: 0.1}`, keyframes `[{at: 0s, pan_x: 0}, ...]` or
    `{apply: post, keys: [...]}`; keys pan_x, pan_y, zoom, rotate, tilt."""
    transition: Transition | None = None
    """Into the next shot: cut (default), crossfade, interpolated or generated."""
    image: ImageSource | None = None
    """Start image: a path relative to the storyboard, or `{generate: PROMPT}` for a keyframe."""
    end_image: ImageSource | None = None
    """End image (first-last-frame generation): a path or `{generate: PROMPT}`."""
    cast: list[CastName] | None = Field(default=None, max_length=16)
    """Cast members the shot shows (names from the top-level `cast:`); their references
    condition engines that take references."""
    source_video: ImagePath | None = None
    """v2v engines: the video to restyle, relative to the storyboard."""
    driving_video: ImagePath | None = None
    """animate engines: the pose video to perform, relative to the storyboard."""
    control: Control | None = None
    """A control video guiding the shot: `{video: clips/dance.mp4, kind: depth, strength: 0.8,
    start: 2s}`; kinds depth, canny, gray, flow, pose (wan_vace, preview)."""
    chain: Chain | None = None
    """How the shot's segments hand over: `chain: overlap` or `{mode: ..., ...}`."""
    profile: ProfileName | None = None
    """Render profile for this shot: draft, final, low_vram, two_pass, ... (the engine's)."""


class Shot(ShotDefaults):
    """One shot of the episode: any key of `defaults:` plus its id, start, segments, seed."""

    id: str
    """Unique shot id: 1-64 of a-z, 0-9, '_' and '-'."""
    start: Literal["chain", "none"] | None = None
    """chain: the first frame is the previous shot's last frame; none: start fresh."""
    segments: list[Segment] | None = Field(default=None, min_length=1)
    """A long shot as chained segments, each with its own prompt and duration."""
    seed: Seed | None = None
    """Seed of the shot's first segment; default: derived from the storyboard's `seed`."""
    prompts: PromptSchedule | None = None
    """Timecoded prompts `{0s: ..., 4s: ...}`: each applies from the segment boundary nearest
    its time (the plan reports the snapping); a segment's own prompt wins."""
    depth: DepthRef | None = None
    """Depth of the start image for 2.5D camera moves (dolly, truck, pedestal, orbit,
    dolly_zoom, focus, aperture): a grayscale PNG relative to the storyboard, white = near,
    black = far (8- or 16-bit; RGB is read as luminance; resized to the frame), or `estimate`
    to run the local depth model `depth.model` (conf/config.yaml) on the shot's image."""

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
    """The final encode; these keys win over the config's `output.*`."""

    fps: Annotated[float, Field(gt=0, le=240)] | None = None
    """Frame rate of the deliverable; default: what the post chain gives."""
    codec: Literal["h264", "h265"] = "h264"
    """Video codec of the deliverables: h264 or h265."""
    crf: Annotated[int, Field(ge=0, le=51, strict=True)] = 18
    """Quality, 0-51: lower is better and bigger (18 is visually lossless)."""
    preset: Literal[
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower"
    ] = "medium"
    """Encoder speed preset: slower presets give smaller files at the same quality."""


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

    path: ImagePath
    """The audio file, relative to the storyboard file."""
    offset: Annotated[float, BeforeValidator(_signed_seconds)] = 0.0
    """Seconds: > 0 delays the soundtrack, < 0 skips its start ('1.5s', '-2s')."""
    fade_in: Annotated[float, BeforeValidator(_fade)] = 0.0
    """Fade-in length at the start of the episode, in seconds."""
    fade_out: Annotated[float, BeforeValidator(_fade)] = 0.0
    """Fade-out length at the end of the episode, in seconds."""
    volume: Annotated[float, Field(ge=0.0, le=4.0)] = 1.0
    """Volume factor, 0-4 (1: unchanged)."""
    reactive: list[ReactiveMapping] | None = Field(None, min_length=1, max_length=32)
    """Audio-reactive mappings (README "Audio-reactive schedules"): `[{param: zoom, source:
    beats, amount: 0.04, decay: 0.25s}]`; each value adds to what the storyboard sets."""


# A post chain item: a preset name from conf/post/ or an inline stage config ({stage: ...}).
PostItem = Union[Annotated[str, Field(min_length=1, strict=True), NamesOf("post_preset")],
                 Annotated[dict[str, Any], NamesOf("post_stage")]]


class Storyboard(_Model):
    """A reelforge storyboard: shots, how they are generated, post-processed and encoded."""

    title: Text | None = None
    """Title of the episode (shown in the report)."""
    fps: Annotated[int, Field(ge=1, le=MAX_FPS, strict=True)] | None = None
    """Generation frame rate; default: the engine's (16 for Wan)."""
    resolution: tuple[int, int] | None = None
    """Generation size WIDTHxHEIGHT, e.g. 832x480 (multiples of 16); default: the engine's."""
    seed: Seed = 0
    """Base seed: every segment derives its own from it."""
    profile: ProfileName | None = None
    """The render's profile: draft, final, low_vram, two_pass, ... (the engine's); the only
    place for one that sets engine options."""
    defaults: ShotDefaults | None = None
    """Shot keys inherited by every shot (a shot's own keys win)."""
    shots: list[Shot] = Field(min_length=1, max_length=MAX_SHOTS)
    """The shots, in episode order."""
    post: list[PostItem] | None = None
    """Post chain of every shot: preset names from conf/post/ (smooth, interpolate2x, ...) or
    inline stages `{stage: upscale, factor: 2}`, in order."""
    cast: Annotated[dict[CastName, CastMember], Field(max_length=64)] | None = None
    """Recurring characters, props and places: name -> member; shots list them in `cast:`."""
    output: Output = Output()
    """Final encode: fps, codec, crf, preset."""
    audio: Audio | None = None
    """The episode's soundtrack: `{path: music.flac, fade_out: 2s}`."""
    fallback: Annotated[str, Field(min_length=1, max_length=64, strict=True),
                        NamesOf("engine")] | None = None
    """Engine that renders a segment when the configured one fails for a reason other than a
    bad storyboard (out of memory after the degrade ladder, weights that fail to load)."""
    notify: Annotated[list[Annotated[str, Field(min_length=3, max_length=2000, strict=True)]],
                      Field(max_length=20)] | None = Field(
        None, description="Apprise URLs told when this storyboard's render ends or fails (episode, "
        "status, duration, contact sheet), added to the config's `notify:`; e.g. "
        "['ntfy://my-topic', 'mailto://user:pass@example.com'].")

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

"""Validate a storyboard file completely before anything loads or renders.

Every problem is collected and reported at once (`StoryboardInvalid`), each with the file, the
line, the key path (`shots[2].segments[0].duration`), the bad value and what would be valid.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ValidationError

from engine.base import EngineSpec
from engine.registry import available_engines, engine_spec
from stages.storyboard.image_refs import ImagePolicy, ImageRefError, ImageResolver
from stages.render.audio import AudioTrack, probe
from stages.plan.chaining import chain_lead
from stages.plan.keys import file_sha256
from stages.post.chain import PostStep, chain_fps, chain_size, chain_warnings, resolve_post_chain
from stages.storyboard.problems import Problem, StoryboardInvalid
from stages.storyboard.schema import (
    MAX_FPS,
    Audio,
    CameraKey,
    CameraMove,
    Output,
    Segment,
    Shot,
    ShotDefaults,
    Storyboard,
    GenerationKeys,
    Transition,
    bridge_id,
    camera_keys,
)
from stages.plan.profiles import ProfileChoice
from stages.storyboard.yaml_source import KeyPath, YamlSource, YamlSyntaxError, format_key_path, load_yaml

# Keys that make Hydra or OmegaConf build objects or change composition; storyboards are data.
FORBIDDEN_KEYS = {"_target_", "_recursive_", "_convert_", "_partial_", "_args_"}
MAX_IMAGE_PIXELS = 8192 * 8192
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".avi")


@dataclass
class ValidatedStoryboard:
    """A storyboard that passed every check, with what the planner needs beside it."""

    name: str
    path: Path
    model: Storyboard
    post: list[PostStep]
    fps: int
    width: int
    height: int
    engine: EngineSpec
    selected: list[str]  # shot ids to put in the output, in storyboard order
    output: Output = field(default_factory=Output)
    warnings: list[str] = field(default_factory=list)

    # Each image reference (as written) -> the local file validation checked (a fetched URL's
    # download, a confined local path); the planner hashes and the engine reads these files.
    images: dict[str, Path] = field(default_factory=dict)
    audio: AudioTrack | None = None  # the episode's soundtrack (file checked, hashed)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def image_path(self, ref: str) -> Path:
        """The confined path validation resolved for `ref`. Every file a render opens passed
        the resolver (stages.storyboard.image_refs); a reference it never saw is a bug, not a path to guess."""
        try:
            return self.images[ref]
        except KeyError:
            raise LookupError(f"{self.path}: {ref!r} was not checked by validation; "
                              "no file outside the storyboard's folders is opened") from None

    def shot(self, shot_id: str) -> Shot:
        return next(s for s in self.model.shots if s.id == shot_id)


@dataclass
class ValidateOptions:
    """Settings from the config and command line that validation must respect."""

    fps: int | None = None  # overrides the storyboard's fps
    resolution: tuple[int, int] | None = None  # (width, height): overrides the storyboard's
    shots: Sequence[str] | None = None  # render a subset
    post_presets: Mapping[str, list[Mapping[str, Any]]] = field(default_factory=dict)
    default_post: Sequence[Any] = ()  # the config's chain, used when the storyboard has none
    post_override: bool = False  # the command line chose the chain: it beats the storyboard's
    default_output: Mapping[str, Any] = field(default_factory=dict)  # storyboard keys win
    images: ImagePolicy = field(default_factory=ImagePolicy)  # where images may come from
    # The engine config's render profiles and the command line's profile= (stages.plan.profiles).
    profiles: ProfileChoice = field(default_factory=ProfileChoice)


# Which model describes the mapping found at a (cleaned) key path; for "did you mean".
def _model_at(path: KeyPath, data: Any) -> type[BaseModel] | None:
    names = [p for p in path if isinstance(p, str)]
    if not path:
        return Storyboard
    if path[-1] == "defaults":
        return ShotDefaults
    if path[-1] == "output":
        return Output
    if path[-1] == "transition":
        return Transition
    if path == ("audio",):
        return Audio
    if names and names[-1] == "segments" and isinstance(path[-1], int):
        return Segment
    if names and names[-1] == "shots" and isinstance(path[-1], int) and len(path) == 2:
        return Shot
    if path[-1] == "camera":
        return CameraMove
    if names and names[-1] == "camera" and isinstance(path[-1], int):
        return CameraKey
    return None


def _clean_loc(loc: Sequence[Any], data: Any, missing: bool) -> KeyPath:
    """Drop pydantic's union tags and type names: keep only steps that exist in the data."""
    out: list[Any] = []
    node = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, Mapping) and part in node:
            out.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            out.append(part)
            node = node[part]
        elif last and missing and isinstance(part, str):
            out.append(part)
    return tuple(out)


def _message(error: Mapping[str, Any], path: KeyPath, data: Any) -> str:
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        key = path[-1] if path else "?"
        model = _model_at(path[:-1], data)
        allowed = list(model.model_fields) if model else []
        close = difflib.get_close_matches(str(key), allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        known = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return f"unknown key {key!r}{hint}{known}"
    if kind == "missing":
        return "required key is missing"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind == "too_short" and isinstance(value, list) and not value:
        return "must not be empty"
    field = path[-1] if path else None
    if field == "camera" and (kind in _SHAPE_ERRORS or kind.startswith("union_tag")):
        return (f"expected a constant move like {{zoom: 0.1}} or a list of keyframes like "
                f"[{{at: 0s, pan_x: 0}}, {{at: 4s, pan_x: 0.2}}], got {value!r}")
    if field == "post" and kind == "list_type":
        return f"expected a list of presets or stages, like [interpolate2x], got {value!r}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping of keys (key: value), got {value!r}"
    if kind == "list_type":
        return f"expected a list, got {value!r}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, got {value!r}"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number, got {value!r}"
    if kind in ("string_type", "str_type"):
        return f"expected text, got {value!r}"
    if kind == "literal_error":
        return f"{value!r} is not one of {error['ctx']['expected']}"
    bounds = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=",
              "less_than": "<"}
    if kind in bounds:
        limit = next(iter(error["ctx"].values()))
        return f"{value!r} is out of range: must be {bounds[kind]} {limit}"
    return f"{error['msg']} (got {value!r})"


# "Wrong shape" errors: for a union (camera: a mapping or a list of keys) pydantic reports one per
# branch; when the value failed deeper inside the branch that fits, this one is noise.
_SHAPE_ERRORS = {"model_type", "model_attributes_type", "list_type", "dict_type"}


def _pydantic_problems(exc: ValidationError, source: YamlSource, file: str) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    errors = [
        (error, _clean_loc(error["loc"], source.data, error["type"] == "missing"))
        for error in exc.errors()
    ]
    for error, path in errors:
        if error["type"] == "extra_forbidden" and path and path[-1] in FORBIDDEN_KEYS:
            continue  # reported once, by _forbidden_keys
        if error["type"] in _SHAPE_ERRORS and any(
            len(other) > len(path) and other[: len(path)] == path for _, other in errors
        ):
            continue
        message = _message(error, path, source.data)
        key = (format_key_path(path), message)
        # A value failing every branch of a union yields one error per branch; keep the first.
        if key in seen or any(k[0] == key[0] for k in seen):
            continue
        seen.add(key)
        problems.append(Problem(file, key[0], message, source.line_of(path)))
    return problems


def _forbidden_keys(data: Any, path: KeyPath = ()) -> Iterable[KeyPath]:
    if isinstance(data, Mapping):
        for key, value in data.items():
            if key in FORBIDDEN_KEYS:
                yield path + (key,)
            yield from _forbidden_keys(value, path + (key,))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _forbidden_keys(value, path + (i,))


def shot_seconds(shot: Shot, defaults: ShotDefaults | None, fps: int) -> float | None:
    """The shot's length in seconds as written (before snapping to the engine's frame rule)."""
    if shot.segments:
        total = 0.0
        for seg in shot.segments:
            seconds = segment_seconds(seg, shot, defaults, fps)
            if seconds is None:
                return None
            total += seconds
        return total
    return segment_seconds(None, shot, defaults, fps)


def segment_seconds(
    seg: Segment | None, shot: Shot, defaults: ShotDefaults | None, fps: int
) -> float | None:
    for holder in (seg, shot, defaults):
        if holder is None:
            continue
        if holder is shot and seg is not None and shot.segments:
            continue  # a shot with segments has no length of its own
        if holder.frames is not None:
            return holder.frames / fps
        if holder.duration is not None:
            return holder.duration
    return None


def inherited(name: str, *holders: Any) -> Any:
    """The first non-None `name` among segment, shot and defaults."""
    for holder in holders:
        if holder is not None and getattr(holder, name, None) is not None:
            return getattr(holder, name)
    return None


class _Checker:
    """Cross-field checks on a storyboard whose values are individually valid."""

    def __init__(self, source: YamlSource, file: str, engine: EngineSpec,
                 resolver: ImageResolver | None = None):
        self.source, self.file, self.engine = source, file, engine
        self.resolver = resolver or ImageResolver(source.path.parent)
        self.problems: list[Problem] = []
        self.warnings: list[str] = []

    def add(self, path: KeyPath, message: str) -> None:
        self.problems.append(
            Problem(self.file, format_key_path(path), message, self.source.line_of(path))
        )

    def image(self, path: KeyPath, relative: str) -> None:
        try:
            full = self.resolver.resolve(relative)
        except ImageRefError as exc:
            self.add(path, str(exc))
            return
        if not full.exists():
            self.add(path, f"image {relative!r} not found (looked at {full}); paths are "
                           "relative to the storyboard file")
            return
        if not full.is_file():
            self.add(path, f"image {relative!r} is not a file")
            return
        try:
            with Image.open(full) as img:
                width, height = img.size
                if width * height > MAX_IMAGE_PIXELS:
                    self.add(path, f"image {relative!r} is {width}x{height}, larger than the "
                                   f"limit of {MAX_IMAGE_PIXELS} pixels; scale it down")
                    return
                img.verify()
            with Image.open(full) as img:
                img.load()  # verify() misses truncated pixel data
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError,
                ValueError) as exc:
            self.add(path, f"{relative!r} is not a readable image ({exc}); use PNG or JPEG")

    def shot(self, index: int, shot: Shot, defaults: ShotDefaults | None, fps: int) -> None:
        base: KeyPath = ("shots", index)
        if shot.start == "chain" and index == 0:
            self.add(base + ("start",), "'chain' on the first shot: there is no previous shot "
                                        "to chain from; remove it or give an image")
        image = inherited("image", shot, defaults)
        if shot.start == "chain" and shot.image is not None:
            self.add(base + ("image",), "a shot cannot both chain from the previous shot "
                                        "and start from an image; remove one")
        if shot.segments:
            for key in ("duration", "frames"):
                if getattr(shot, key) is not None:
                    self.add(base + (key,), f"a shot with segments takes its length from "
                                            f"them; move {key!r} onto each segment")
        holders = [(base + ("segments", i), seg) for i, seg in enumerate(shot.segments or [])]
        for path, holder in holders or [(base, shot)]:
            seg = holder if holder is not shot else None
            if holder.duration is not None and holder.frames is not None:
                self.add(path + ("frames",), "set either duration or frames, not both")
            if segment_seconds(seg, shot, defaults, fps) is None:
                self.add(path + ("duration",), "required: give a duration (like '5s') or "
                                               "frames (here, on the shot, or in defaults)")
            if not inherited("prompt", seg, shot, defaults) and not (
                    shot.prompts and 0.0 in shot.prompts):
                self.add(path + ("prompt",), "required: every segment needs a prompt "
                                             "(here, on the shot, in defaults, or a `prompts:` "
                                             "schedule entry at 0s)")
            if seg is not None and seg.end_image is not None:
                self.image(path + ("end_image",), seg.end_image)
        for key in ("image", "end_image"):
            value = getattr(shot, key)
            if value is not None:
                self.image(base + (key,), value)
        self._modes(base, shot, defaults, image)
        self._camera(base, shot, defaults, fps)
        self._generation(base, shot, defaults, fps)
        self._chain(base, shot, defaults)
        self._schedule(base, shot, defaults, fps)

    def _chain(self, base: KeyPath, shot: Shot, defaults: ShotDefaults | None) -> None:
        """The shot's chain mode against what the engine can hand over between segments."""
        chain = inherited("chain", shot, defaults)
        if chain is None:
            return
        where = base + ("chain",) if shot.chain is not None else ("defaults", "chain")
        engine = self.engine
        if chain.mode not in engine.chain_modes:
            able = [name for name in available_engines()
                    if chain.mode in engine_spec(name).chain_modes]
            self.add(where + ("mode",), f"engine {engine.name!r} cannot chain segments by "
                                        f"{chain.mode!r} (it can: "
                                        f"{', '.join(sorted(engine.chain_modes))}); use one of "
                                        f"those, or an engine that can ({', '.join(able)})")
            return
        lead = chain_lead(chain, engine)
        if lead * 2 > engine.max_frames:
            self.add(where, f"chain {chain.mode!r} shares {lead} frames between segments, but "
                            f"engine {engine.name!r} renders at most {engine.max_frames} per "
                            f"segment; use a smaller overlap / motion_latents")
        if chain.anchor is not None and shot.chain is not None:
            self.image(where + ("anchor",), chain.anchor)
        if chain.mode == "overlap" and not engine.context_frames:
            self.warnings.append(
                f"shot {shot.id}: engine {engine.name!r} conditions on one start frame, so "
                f"overlap segments start from the first overlap frame and the join blends "
                f"them (wan_vace conditions on all of them)")

    def transitions(self, shots: Sequence[Shot], defaults: ShotDefaults | None,
                    fps: int) -> None:
        """Blends no longer than the shots they join; generated clips' names free."""
        ids = {shot.id for shot in shots}
        blends: dict[int, tuple[str, float]] = {}  # boundary index -> (shot id, seconds)
        for i, (shot, after) in enumerate(zip(shots, shots[1:])):
            transition = inherited("transition", shot, defaults)
            if transition is None or transition.type == "cut":
                continue
            where = ("shots", i, "transition") if shot.transition is not None \
                else ("defaults", "transition")
            if transition.type == "generated":
                # A subset render bridges the shots it keeps: any later shot may follow.
                taken = sorted(bridge_id(shot.id, later.id) for later in shots[i + 1:]
                               if bridge_id(shot.id, later.id) in ids)
                if taken:
                    self.add(where + ("type",), f"the clip this generated transition renders "
                                                f"would be named {taken[0]!r}, which is also a "
                                                f"shot id: rename that shot (ids with '__' are "
                                                f"how generated clips are named)")
                continue
            # A crossfade or morph overlaps the two shots by its duration: together with the
            # shot's other blend it must fit inside each shot, or the shot is swallowed and
            # the episode comes out shorter than planned.
            before_in = blends[i - 1][1] if i > 0 and blends.get(i - 1) else 0.0
            after_out = _blend(inherited("transition", after, defaults)) \
                if i + 2 < len(shots) else 0.0
            for other, sec, used in ((shot, shot_seconds(shot, defaults, fps), before_in),
                                     (after, shot_seconds(after, defaults, fps), after_out)):
                if sec is not None and transition.duration + used > sec + 1e-9:
                    extra = f" plus its other {used:g}s blend" if used else ""
                    self.add(where + ("duration",), f"a {transition.duration:g}s "
                                                    f"{transition.type}{extra} is longer than "
                                                    f"shot {other.id} ({sec:g}s): it would "
                                                    f"swallow the shot and shorten the episode; "
                                                    f"shorten the transition or lengthen the "
                                                    f"shot")
                    break
            blends[i] = (shot.id, transition.duration)

    def generated_transitions(self, shots: Sequence[Shot], defaults: ShotDefaults | None) -> None:
        """`transition: {type: generated}` renders a first-last-frame clip into the next shot."""
        for i, shot in enumerate(shots[:-1]):
            transition = inherited("transition", shot, defaults)
            if transition is None or transition.type != "generated":
                continue
            where = ("shots", i, "transition") if shot.transition is not None \
                else ("defaults", "transition")
            if "flf2v" not in self.engine.modes:
                self.add(where + ("type",), f"a generated transition needs an engine that "
                                            f"renders from a first to a last frame; "
                                            f"{self.engine.name!r} cannot (modes: "
                                            f"{', '.join(sorted(self.engine.modes))}); use "
                                            f"crossfade or interpolated, or another engine")
            elif shots[i + 1].start == "chain":
                self.add(where + ("type",), f"shot {shots[i + 1].id} chains from this shot's "
                                            f"last frame, so there is no gap to bridge; use "
                                            f"a cut or remove `start: chain` there")

    def _schedule(self, base: KeyPath, shot: Shot, defaults: ShotDefaults | None,
                  fps: int) -> None:
        if not shot.prompts:
            return
        length = shot_seconds(shot, defaults, fps)
        for at in shot.prompts:
            if length is not None and at >= length:
                self.add(base + ("prompts", f"{at:g}s"),
                         f"prompt at {at:g}s is at or past the end of the shot ({length:g}s)")
        if shot.segments and all(seg.prompt for seg in shot.segments):
            self.warnings.append(f"shot {shot.id}: every segment has its own prompt, so the "
                                 f"`prompts:` schedule is not used")

    def input_file(self, path: KeyPath, relative: str, what: str,
                   suffixes: tuple[str, ...]) -> None:
        """A non-image input (a LoRA, a source video): confined like images, must exist."""
        try:
            self.resolver.file(relative, what, suffixes)
        except ImageRefError as exc:
            self.add(path, str(exc))

    def _file_once(self, path: KeyPath, relative: str, what: str,
                   suffixes: tuple[str, ...] = (), must_exist: bool = True) -> None:
        """`input_file` for a key every shot inherits (defaults.*): reported once, not per shot.
        `must_exist=False`: only confined (a key the engine ignores is never opened)."""
        done = self.__dict__.setdefault("_files_checked", set())
        if path in done:
            return
        done.add(path)
        if must_exist:
            self.input_file(path, relative, what, suffixes)
            return
        try:
            self.resolver.resolve(relative, what, remote=False)
        except ImageRefError as exc:
            self.add(path, str(exc))

    def _generation(self, base: KeyPath, shot: Shot, defaults: ShotDefaults | None,
                    fps: int) -> None:
        """Generation keys against what the engine honours and requires."""
        engine = self.engine
        holders = [(base, shot)] + [(base + ("segments", i), seg)
                                    for i, seg in enumerate(shot.segments or [])]
        for path, holder in holders:
            for key in GenerationKeys.model_fields:
                if getattr(holder, key) is not None and key not in engine.honours:
                    self.warnings.append(
                        f"shot {shot.id}: {format_key_path(path + (key,))} is ignored by engine "
                        f"{engine.name!r} (it honours: {', '.join(sorted(engine.honours)) or 'none'})")
            if holder.loras and engine.experts < 2 and any(
                    lora.strength_2 is not None for lora in holder.loras):
                self.warnings.append(f"shot {shot.id}: loras strength_2 is ignored by engine "
                                     f"{engine.name!r} (one expert)")
            for i, lora in enumerate(holder.loras or []):
                self.input_file(path + ("loras", i, "path"), lora.path, "LoRA",
                          (".safetensors", ".bin", ".pt", ".pth"))
        for i, lora in enumerate((defaults.loras if defaults else None) or []):
            self._file_once(("defaults", "loras", i, "path"), lora.path, "LoRA",
                            (".safetensors", ".bin", ".pt", ".pth"))
        for key in ("source_video", "driving_video"):
            value = inherited(key, shot, defaults)
            if value is None and key in engine.requires:
                self.add(base + (key,), f"required by engine {engine.name!r}: give the "
                                        f"{key.replace('_', ' ')} (a video file next to the "
                                        "storyboard)")
            elif value is not None:
                # Confined wherever it is written (the shot or defaults:); opened only when used.
                where = base + (key,) if getattr(shot, key) is not None else ("defaults", key)
                if key not in engine.honours:
                    self.warnings.append(f"shot {shot.id}: {key} is ignored by engine "
                                         f"{engine.name!r}")
                    self._file_once(where, value, key.replace("_", " "), must_exist=False)
                else:
                    self._file_once(where, value, key.replace("_", " "), VIDEO_SUFFIXES)
        if "image" in engine.requires and not inherited("image", shot, defaults) \
                and shot.start != "chain":
            self.add(base + ("image",), f"required by engine {engine.name!r}: give the start "
                                        "image (the character to animate)")
        # Chained segments start from the previous segment's last frame: an image-to-video job.
        length = shot_seconds(shot, defaults, fps)
        splits = length is not None and length * fps + 1 > engine.max_frames
        if engine.modes <= {"t2v"} and (len(shot.segments or []) > 1 or splits):
            self.add(base + ("segments" if shot.segments else "duration",),
                     f"this shot needs several chained segments (each starts from the last "
                     f"frame of the one before), but engine {engine.name!r} is text-to-video "
                     f"only (longest segment {engine.max_frames} frames); use an image-to-video "
                     f"engine (wan21_i2v, wan22_i2v_a14b, wan22_ti2v_5b, wan_vace) or shorter "
                     f"shots")

    def _modes(self, base: KeyPath, shot: Shot, defaults: ShotDefaults | None, image) -> None:
        modes = self.engine.modes
        ends = [inherited("end_image", shot, defaults)] + [s.end_image for s in shot.segments or []]
        if any(ends) and "flf2v" not in modes and "i2v" not in modes:
            self.add(base + ("end_image",), f"engine {self.engine.name!r} cannot end on an "
                                            f"image (modes: {', '.join(sorted(modes))})")
        if (image or shot.start == "chain") and not modes & {"i2v", "animate"}:
            self.add(base + ("image",), f"engine {self.engine.name!r} cannot start from an "
                                        f"image (modes: {', '.join(sorted(modes))})")

    def _camera(self, base: KeyPath, shot: Shot, defaults: ShotDefaults | None, fps: int) -> None:
        camera = shot.camera if shot.camera is not None else (defaults.camera if defaults else None)
        keys = camera_keys(camera)
        if keys is None:
            return
        where = base + ("camera",) if shot.camera is not None else ("defaults", "camera")
        if not isinstance(camera, list):
            where = where + ("keys",)
        length = shot_seconds(shot, defaults, fps)
        previous = -1.0
        for i, key in enumerate(keys):
            if key.at <= previous:
                self.add(where + (i, "at"), f"keyframe at {key.at:g}s is not after the previous "
                                            f"one ({previous:g}s); keyframes must be in order")
            if length is not None and key.at > length + 1e-9:
                self.add(where + (i, "at"), f"keyframe at {key.at:g}s is past the end of the "
                                            f"shot ({length:g}s)")
            previous = key.at


def _checks_of_valid_shots(
    source: YamlSource, file: str, engine: EngineSpec, options: ValidateOptions
) -> list[Problem]:
    """When the schema fails somewhere, still run the cross-field checks (images, chaining,
    lengths, keyframes) on the shots that are valid on their own, so that every problem is
    reported at once rather than one round at a time."""
    data = source.data
    shots = data.get("shots")
    if not isinstance(shots, list):
        return []
    try:
        raw_defaults = data.get("defaults")
        defaults = None if raw_defaults is None else ShotDefaults.model_validate(raw_defaults)
    except ValidationError:
        return []  # what the shots inherit is unknown; their checks would guess
    fps = data.get("fps")
    if not isinstance(fps, int) or isinstance(fps, bool) or not 1 <= fps <= MAX_FPS:
        fps = None
    fps = options.fps or fps or engine.default_fps
    checker = _Checker(source, file, engine, ImageResolver(source.path.parent, options.images))
    for i, raw in enumerate(shots):
        try:
            shot = Shot.model_validate(raw)
        except ValidationError:
            continue  # its own problems are already reported
        checker.shot(i, shot, defaults, fps)
    return checker.problems


def validate_storyboard(
    path: Path, engine: EngineSpec, options: ValidateOptions | None = None, name: str | None = None
) -> ValidatedStoryboard:
    """Load and check `path`; raise StoryboardInvalid listing every problem."""
    options = options or ValidateOptions()
    path = Path(path)
    file = str(path)
    try:
        source = load_yaml(path)
    except YamlSyntaxError as exc:
        column = f"column {exc.column}: " if exc.column is not None else ""
        raise StoryboardInvalid([Problem(file, "<yaml>", column + exc.problem, exc.line)]) from None
    except OSError as exc:
        raise StoryboardInvalid([Problem(file, "<file>", f"cannot read: {exc.strerror}")]) from None
    data = source.data
    if not isinstance(data, Mapping):
        kind = "empty" if data is None else f"a {type(data).__name__}, not a mapping"
        raise StoryboardInvalid([Problem(file, "<top level>", f"the file is {kind}; a storyboard "
                                         "is a mapping with at least a 'shots:' list", 1)])

    problems = [
        Problem(file, format_key_path(p), f"{p[-1]!r} is not allowed: storyboards are data and "
                "cannot instantiate objects", source.line_of(p))
        for p in _forbidden_keys(data)
    ]
    try:
        model = Storyboard.model_validate(data)
    except ValidationError as exc:
        problems += _pydantic_problems(exc, source, file)
        problems += _checks_of_valid_shots(source, file, engine, options)
        raise StoryboardInvalid(problems) from None
    if problems:
        raise StoryboardInvalid(problems)

    checker = _Checker(source, file, engine, ImageResolver(path.parent, options.images))
    fps = options.fps or model.fps or engine.default_fps
    width, height = options.resolution or model.resolution or engine.default_resolution
    multiple = engine.resolution_multiple
    if width % multiple or height % multiple:
        checker.add(("resolution",), f"{width}x{height} is not a multiple of {multiple} for "
                                     f"engine {engine.name!r}; try "
                                     f"{round(width / multiple) * multiple}x"
                                     f"{round(height / multiple) * multiple}")
    if model.fallback is not None and model.fallback not in available_engines():
        close = difflib.get_close_matches(model.fallback, available_engines(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        checker.add(("fallback",), f"unknown engine {model.fallback!r}{hint} (engines: "
                                   f"{', '.join(available_engines())})")
    seen: dict[str, int] = {}
    for i, shot in enumerate(model.shots):
        if shot.id in seen:
            checker.add(("shots", i, "id"), f"duplicate shot id {shot.id!r} (first used by "
                                            f"shots[{seen[shot.id]}])")
        seen.setdefault(shot.id, i)
        checker.shot(i, shot, model.defaults, fps)
    checker.generated_transitions(model.shots, model.defaults)
    checker.transitions(model.shots, model.defaults, fps)
    _check_profiles(checker, model, options.profiles)
    for key in ("image", "end_image"):
        value = getattr(model.defaults, key, None) if model.defaults else None
        if value is not None:
            checker.image(("defaults", key), value)
    if model.defaults and model.defaults.chain and model.defaults.chain.anchor:
        checker.image(("defaults", "chain", "anchor"), model.defaults.chain.anchor)

    use_storyboard_post = model.post is not None and not options.post_override
    post_items = model.post if use_storyboard_post else list(options.default_post)
    try:
        # Files a storyboard's stages name (weights, LUTs) are relative to the storyboard;
        # those of a command-line chain to the working directory.
        # The storyboard's own stages name files through the one confining resolver.
        post = resolve_post_chain(post_items, options.post_presets,
                                  path.parent if use_storyboard_post else None,
                                  checker.resolver if use_storyboard_post else None)
        checker.warnings += chain_warnings(post)
    except ValueError as exc:
        if use_storyboard_post:
            # A file a storyboard's stage names is reported at its key (post[0].lut).
            where = (exc.index, exc.key) if getattr(exc, "key", None) \
                and getattr(exc, "index", None) is not None else ()
            checker.add(("post",) + where, str(exc))
        else:  # the chain came from post= or the config: blame the command line, not the file
            checker.problems.append(Problem("command line", "post", str(exc)))
        post = []
    _check_post_output(checker, post, width, height, fps, use_storyboard_post)
    audio = _audio_track(checker, model.audio, path.parent) if model.audio else None
    try:
        # The config's own values first: a bad `output.crf=99` is an error even where the
        # storyboard's `output:` overrides it (a dry run and the render agree).
        Output.model_validate(dict(options.default_output))
        output = Output.model_validate(
            {**options.default_output, **model.output.model_dump(exclude_unset=True)}
        )
    except ValidationError as exc:
        output = Output()
        for error in exc.errors():
            checker.problems.append(Problem("config", "output." + ".".join(map(str, error["loc"])),
                                            f"{error['msg']} (got {error.get('input')!r})"))

    selected = [s.id for s in model.shots]
    if options.shots:
        unknown = [s for s in options.shots if s not in seen]
        for shot_id in unknown:
            close = difflib.get_close_matches(shot_id, list(seen), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            checker.problems.append(Problem("command line", "shots", f"no shot {shot_id!r} in "
                                            f"{path.name}{hint} (shots: {', '.join(seen)})"))
        wanted = set(options.shots)
        selected = [s for s in selected if s in wanted]
    if checker.problems:
        raise StoryboardInvalid(checker.problems)
    return ValidatedStoryboard(
        name=name or path.stem, path=path.resolve(), model=model, post=post, fps=fps,
        width=width, height=height, engine=engine, selected=selected, output=output,
        images=dict(checker.resolver.resolved), warnings=checker.warnings, audio=audio,
    )


# What the encoder can take (H.264 level 6.2 is 8192x4320) and what Output.fps allows.
MAX_OUTPUT_SIDE = 8192
MAX_OUTPUT_FPS = 240.0


def _check_post_output(checker: _Checker, post: Sequence[Any], width: int, height: int,
                       fps: float, from_storyboard: bool) -> None:
    """The frames the whole post chain produces must be encodable: a chain of upscales or
    interpolations that multiplies past the limits fails here, not after hours of rendering
    with a huge allocation."""
    out_width, out_height = chain_size(post, width, height)
    out_fps = chain_fps(post, fps)
    problems = []
    if max(out_width, out_height) > MAX_OUTPUT_SIDE:
        problems.append(f"the chain makes {out_width}x{out_height} frames from {width}x{height}; "
                        f"at most {MAX_OUTPUT_SIDE} pixels a side can be encoded: lower the "
                        f"upscale factors (or the resolution)")
    if out_fps > MAX_OUTPUT_FPS:
        problems.append(f"the chain makes {out_fps:g} fps from {fps:g}; at most "
                        f"{MAX_OUTPUT_FPS:g} fps: lower the interpolation factors")
    for message in problems:
        if from_storyboard:
            checker.add(("post",), message)
        else:
            checker.problems.append(Problem("command line", "post", message))


def _blend(transition: Transition | None) -> float:
    """Seconds a transition overlaps the shots it joins (cuts and generated clips: none)."""
    if transition is None or transition.type in ("cut", "generated"):
        return 0.0
    return float(transition.duration)


def _check_profiles(checker: _Checker, model: Storyboard, choice: ProfileChoice) -> None:
    """Profile names the engine config defines; engine options only for the whole render."""
    known = sorted(choice.profiles)
    engine = checker.engine.name

    def unknown(name: str) -> str:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return (f"unknown profile {name!r} for engine {engine!r}{hint} (its profiles: "
                f"{', '.join(known) or 'none'}; they are defined in conf/engine/{engine}.yaml "
                f"under profiles:)")

    if choice.override is not None:
        if choice.override not in choice.profiles:
            checker.problems.append(Problem("command line", "profile", unknown(choice.override)))
        return  # the command line's profile replaces the storyboard's
    declared: list[tuple[KeyPath, str]] = []
    if model.profile is not None:
        declared.append((("profile",), model.profile))
    if model.defaults is not None and model.defaults.profile is not None:
        declared.append((("defaults", "profile"), model.defaults.profile))
    declared += [(("shots", i, "profile"), shot.profile) for i, shot in enumerate(model.shots)
                 if shot.profile is not None]
    for path, name in declared:
        profile = choice.get(name)
        if profile is None:
            checker.add(path, unknown(name))
        elif profile.options and path != ("profile",):
            checker.add(path, f"profile {name!r} sets engine options "
                              f"({', '.join(sorted(profile.options))}), which change how the "
                              f"model loads: set it for the whole render (`profile: {name}` at "
                              f"the top of the storyboard, or profile={name} on the command "
                              f"line)")


def _audio_track(checker: _Checker, audio: Audio, base: Path) -> AudioTrack | None:
    """The soundtrack, if its file exists (confined like every file a storyboard names) and
    holds an audio stream ffmpeg can read."""
    where = ("audio", "path")
    try:
        full = checker.resolver.file(audio.path, "audio file")
    except ImageRefError as exc:
        checker.add(where, str(exc))
        return None
    try:
        streams = probe(full)
    except (ValueError, OSError) as exc:
        checker.add(where, f"{audio.path!r}: {exc}")
        return None
    if not streams.audio:
        checker.add(where, f"{audio.path!r} has no audio stream; use a WAV, MP3, AAC/M4A, "
                           "FLAC or OGG file")
        return None
    return AudioTrack(full, audio.offset, audio.fade_in, audio.fade_out, audio.volume,
                      file_sha256(full))

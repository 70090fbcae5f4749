"""Validate a storyboard file completely before anything loads or renders.

Every problem is collected and reported at once (`StoryboardInvalid`), each with the file, the
line, the key path (`shots[2].segments[0].duration`), the bad value and what would be valid.

This module runs the checks in order; they live by concern beside it: schema_errors (pydantic's
errors as readable lines), checks.shot (one shot against the engine and the files),
checks.episode (transitions, profiles, post chain, soundtrack). What a shot inherits from
`defaults:` is decided by the resolver (stages.storyboard.resolve), shared with the planner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from pydantic import ValidationError

from engine.base import EngineSpec
from engine.registry import available_engines, engine_spec
from engine.suggest import did_you_mean
from stages.plan.profiles import ProfileChoice
from stages.post.chain import PostStep, chain_warnings, resolve_post_chain
from stages.render.audio import AudioTrack
from stages.storyboard.checks.audio_reactive import depth_mapping_problems, reactive_analysis
from stages.storyboard.checks.episode import (
    MAX_OUTPUT_FPS,
    MAX_OUTPUT_SIDE,
    audio_track,
    check_generated_transitions,
    check_post_output,
    check_profiles,
    check_transitions,
)
from stages.storyboard.checks.cast import CastChecks
from stages.storyboard.checks.animate import check_animate_pose
from stages.storyboard.checks.depth import check_depth
from stages.storyboard.checks.fallback import fallback_warnings
from stages.control.checks import check_control
from stages.storyboard.checks.shot import MAX_IMAGE_PIXELS, VIDEO_SUFFIXES, Checker
from stages.storyboard.image_refs import ImagePolicy, ImageResolver
from stages.storyboard.problems import Problem, StoryboardInvalid
from stages.storyboard.resolve import inherited, segment_seconds, shot_seconds
from stages.storyboard.schema import (
    MAX_FPS,
    Output,
    Shot,
    ShotDefaults,
    Storyboard,
    image_file,
)
from stages.storyboard.checks.schema_errors import FORBIDDEN_KEYS, forbidden_keys, pydantic_problems
from stages.storyboard.yaml_source import YamlSource, YamlSyntaxError, format_key_path, load_yaml

# Names importers have always found here.
__all__ = [
    "FORBIDDEN_KEYS", "MAX_IMAGE_PIXELS", "MAX_OUTPUT_FPS", "MAX_OUTPUT_SIDE", "VIDEO_SUFFIXES",
    "ValidateOptions", "ValidatedStoryboard", "inherited", "segment_seconds", "shot_seconds",
    "validate_storyboard",
]


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
    audio_analysis: Any = None  # stages.audio.analysis.AudioAnalysis with `audio.reactive`
    keyframes_engine: str | None = None  # the config's keyframes.engine (resolve.keyframe_engine)
    depth_model: str | None = None  # the config's depth.model (control videos of kind depth)
    pose_model: str | None = None  # the config's pose.model (pose control, animate driving)
    pose_detector: str | None = None  # the config's pose.detector (the performer's box)

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
    # The config's keyframes.engine: generates keyframes whose block names no engine.
    keyframes_engine: str | None = None
    # The engine config's fallback engine name; the storyboard's `fallback:` wins over it.
    fallback: str | None = None
    # The config's depth.model: the local depth model `control: {kind: depth}` extracts with.
    depth_model: str | None = None
    # The config's pose.model: the local pose model of `control: {kind: pose}` and of
    # wan_animate's driving videos; pose.detector: its optional person detector.
    pose_model: str | None = None
    pose_detector: str | None = None
    # The cache folder: `audio.reactive`'s analysis is kept there as JSON (None: in memory only).
    cache_dir: Path | None = None


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
    checker = Checker(source, file, engine, ImageResolver(source.path.parent, options.images))
    for i, raw in enumerate(shots):
        try:
            shot = Shot.model_validate(raw)
        except ValidationError:
            continue  # its own problems are already reported
        checker.shot(i, shot, defaults, fps)
        check_depth(checker, i, shot, defaults, options.depth_model)
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
        for p in forbidden_keys(data)
    ]
    try:
        model = Storyboard.model_validate(data)
    except ValidationError as exc:
        problems += pydantic_problems(exc, source, file)
        problems += _checks_of_valid_shots(source, file, engine, options)
        raise StoryboardInvalid(problems) from None
    if problems:
        raise StoryboardInvalid(problems)

    checker = Checker(source, file, engine, ImageResolver(path.parent, options.images))
    fps = options.fps or model.fps or engine.default_fps
    width, height = options.resolution or model.resolution or engine.default_resolution
    multiple = engine.resolution_multiple
    if width % multiple or height % multiple:
        checker.add(("resolution",), f"{width}x{height} is not a multiple of {multiple} for "
                                     f"engine {engine.name!r}; try "
                                     f"{round(width / multiple) * multiple}x"
                                     f"{round(height / multiple) * multiple}")
    if model.fallback is not None and model.fallback not in available_engines():
        hint = did_you_mean(model.fallback, available_engines())
        checker.add(("fallback",), f"unknown engine {model.fallback!r}{hint} (engines: "
                                   f"{', '.join(available_engines())})")
    seen: dict[str, int] = {}
    for i, shot in enumerate(model.shots):
        if shot.id in seen:
            checker.add(("shots", i, "id"), f"duplicate shot id {shot.id!r} (first used by "
                                            f"shots[{seen[shot.id]}])")
        seen.setdefault(shot.id, i)
        checker.shot(i, shot, model.defaults, fps)
        check_control(checker, i, shot, model.defaults, fps, options.depth_model,
                      options.pose_model, options.pose_detector)
        check_depth(checker, i, shot, model.defaults, options.depth_model)
    check_animate_pose(checker, model, options.pose_model, options.pose_detector)
    check_generated_transitions(checker, model.shots, model.defaults)
    check_transitions(checker, model.shots, model.defaults, fps)
    check_profiles(checker, model, options.profiles)
    CastChecks(checker, model, options.keyframes_engine).run()
    fallback_name = model.fallback or options.fallback
    if fallback_name in available_engines() and fallback_name != engine.name:
        checker.warnings += fallback_warnings(model, engine, engine_spec(fallback_name),
                                              bool(options.keyframes_engine)
                                              or engine.makes_images)
    for key in ("image", "end_image"):
        value = image_file(getattr(model.defaults, key, None)) if model.defaults else None
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
    check_post_output(checker, post, width, height, fps, use_storyboard_post)
    audio = audio_track(checker, model.audio, path.parent) if model.audio else None
    analysis = reactive_analysis(checker, model.audio, audio, options.cache_dir)
    depth_mapping_problems(checker, model)
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
            hint = did_you_mean(shot_id, seen)
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
        audio_analysis=analysis,
        keyframes_engine=options.keyframes_engine, depth_model=options.depth_model,
        pose_model=options.pose_model, pose_detector=options.pose_detector,
    )

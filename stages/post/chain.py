"""Post-processing chains: named stages with typed parameters, run on a shot's frames.

A chain is a list of stage configs like `{stage: interpolate, factor: 2}`. Storyboards and the
`conf/post/` presets both produce such lists; `resolve_post_chain` expands preset names, checks
every parameter (and that files the stages read exist) and returns typed `PostStep`s.
`run_post_chain` streams frames through them: every stage is a generator holding at most the
window of frames it needs, so memory does not grow with the clip's length.

Cuts: `scene_detect` marks the first frame of every scene; the marks travel with the frames
(stages.post.stream.PostFrame) through every later stage, and every temporal stage (smooth, deflicker,
colour statistics, interpolate, slowmo) keeps its work inside scenes. A chain computes the cut
list once, wherever scene_detect sits; stages before it see no cuts (chain_warnings says so).

Every stage predicts its output frame count, fps and frame size from its input's, so a plan knows
them before anything runs (`chain_frames_out`, `chain_fps`, `chain_size`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator, Literal, Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stages.post.color import ColorParams, color_stream
from stages.post.deflicker import DeflickerParams, deflicker_stream
from stages.plan.keys import file_sha256
from stages.post.loop import LoopParams, crossfade_loop_stream, loop_frames_out, pingpong_stream
from stages.post.retime import BlendSynth, FlowSynth, retime, retimed_count, step_for
from stages.post.scene_detect import SceneDetectParams, detect_cuts
from stages.post.smooth import SmoothParams, smooth_stream
from stages.post.stream import PostFrame, as_post_frames, images
from stages.post.upscale import UpscaleParams, upscale_stream, upscaled_size

Method = Literal["flow", "blend", "minterpolate", "rife"]
Quality = Literal["ultrafast", "fast", "medium"]


class _RetimeParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    files: ClassVar[tuple[str, ...]] = ("model",)
    method: Method = "flow"
    quality: Quality = "medium"  # flow: DIS preset
    model: str | None = Field(None, min_length=1)  # rife: a RIFE 4.x flownet.pkl
    device: Literal["auto", "cpu", "cuda"] = "auto"  # rife

    @model_validator(mode="after")
    def _method_keys(self):
        if self.method == "rife" and self.model is None:
            raise ValueError("method rife needs model: PATH to RIFE weights (a Practical-RIFE "
                             "flownet.pkl); without weights use method: flow")
        if self.method != "rife" and self.model is not None:
            raise ValueError(f"model applies to method: rife, not {self.method!r}")
        return self


class InterpolateParams(_RetimeParams):
    """Frame interpolation: `factor` 2/4/8 times the fps, or a target `fps` (24 -> 60 is 2.5x)."""

    factor: Literal[2, 4, 8] | None = None
    fps: float | None = Field(None, gt=0, le=240)

    @model_validator(mode="after")
    def _factor_or_fps(self):
        if self.factor is not None and self.fps is not None:
            raise ValueError(f"give factor ({self.factor}) or fps ({self.fps:g}), not both")
        if self.factor is None and self.fps is None:
            object.__setattr__(self, "factor", 2)
        return self

    def step(self, fps: float) -> Fraction:
        return Fraction(1, self.factor) if self.factor else step_for(fps, self.fps)

    def out_fps(self, fps: float) -> float:
        return fps * self.factor if self.factor else float(self.fps)


class SlowmoParams(_RetimeParams):
    """Slow motion: `factor` times the frames at the same fps (the clip lasts factor x longer)."""

    factor: int = Field(2, ge=2, le=16)


def _synth(params: _RetimeParams, digests: Mapping[str, str]):
    if params.method == "flow":
        return FlowSynth(params.quality)
    if params.method == "blend":
        return BlendSynth()
    from stages.post.rife import load_rife  # torch loads only for RIFE

    return load_rife(params.model, digests.get("model", ""), params.device)


def _retime(stream, fps, step, params: _RetimeParams, digests) -> Iterator[PostFrame]:
    if params.method == "minterpolate":
        from stages.post.minterpolate import minterpolate_stream

        return minterpolate_stream(stream, fps, step)
    return retime(stream, step, _synth(params, digests))


# (stream, input fps, params, file digests) -> stream
RunFn = Callable[[Iterator[PostFrame], float, Any, Mapping[str, str]], Iterator[PostFrame]]


@dataclass(frozen=True)
class StageDef:
    params: type[BaseModel]
    run: RunFn
    # Output frame count for an input count and fps (plans and manifests know it up front).
    frames_out: Callable[[int, float, Any], int] = lambda n, fps, p: n
    fps_out: Callable[[float, Any], float] = lambda fps, p: fps
    size_out: Callable[[int, int, Any], tuple[int, int]] = lambda w, h, p: (w, h)
    # Reads neighbouring frames: needs the cut list, belongs after scene_detect.
    temporal: bool = False


STAGES: dict[str, StageDef] = {
    "scene_detect": StageDef(
        SceneDetectParams, lambda s, fps, p, d: detect_cuts(s, p.threshold)),
    "smooth": StageDef(
        SmoothParams,
        lambda s, fps, p, d: smooth_stream(s, p.strength, p.window, p.motion, p.quality),
        temporal=True),
    "deflicker": StageDef(
        DeflickerParams, lambda s, fps, p, d: deflicker_stream(s, p.window, p.strength),
        temporal=True),
    "interpolate": StageDef(
        InterpolateParams,
        lambda s, fps, p, d: _retime(s, fps, p.step(fps), p, d),
        lambda n, fps, p: retimed_count(n, p.step(fps)),
        lambda fps, p: p.out_fps(fps),
        temporal=True),
    "slowmo": StageDef(
        SlowmoParams,
        lambda s, fps, p, d: _retime(s, fps, Fraction(1, p.factor), p, d),
        lambda n, fps, p: retimed_count(n, Fraction(1, p.factor)),
        temporal=True),
    "upscale": StageDef(
        UpscaleParams, lambda s, fps, p, d: upscale_stream(s, p, d.get("model", "")),
        size_out=lambda w, h, p: upscaled_size(w, h, p.factor)),
    "loop": StageDef(
        LoopParams,
        lambda s, fps, p, d: pingpong_stream(s, p.join, p.quality) if p.mode == "pingpong"
        else crossfade_loop_stream(s, p.overlap),
        lambda n, fps, p: loop_frames_out(n, p)),
    "color": StageDef(
        ColorParams, lambda s, fps, p, d: color_stream(s, p, d), temporal=True),
}


@dataclass(frozen=True)
class PostStep:
    stage: str
    params: BaseModel
    # sha256 of every file a parameter names (weights, reference image, LUT), by parameter.
    digests: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The step for content keys and manifests: files appear by name and content digest,
        never by absolute path (moving a file keeps the cache, editing it does not)."""
        data: dict[str, Any] = {"stage": self.stage}
        for key, value in self.params.model_dump().items():
            if key in self.digests and value is not None:
                value = {"file": Path(value).name, "sha256": self.digests[key]}
            data[key] = value
        return data


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


class PostChainError(ValueError):
    """A bad post chain item; `index` is the item's place in the chain as written and `key` the
    file parameter at fault (None: not a file problem), so validation can name `post[0].lut`."""

    def __init__(self, message: str, index: int | None = None, key: str | None = None):
        super().__init__(message)
        self.index, self.key = index, key


# What each file parameter is, for messages; which suffixes it may have (none: any).
_FILE_KINDS = {"lut": ("LUT", (".cube",)), "reference": ("colour reference image", ()),
               "model": ("model", ())}


def _trusted_path(name: str, key: str, value: str, base_dir: Path | None) -> Path:
    """A file named by trusted config (a conf/post/ preset, the command line): `~` and absolute
    paths are fine; relative ones start at `base_dir` (default: the working directory)."""
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    path = path.resolve()
    if not path.is_file():
        where = f" (relative paths start at {base_dir})" if base_dir else ""
        raise PostChainError(f"stage {name!r}: {key} file {value!r} not found (looked at "
                             f"{path}){where}", key=key)
    return path


def _resolve_files(name: str, params: BaseModel, base_dir: Path | None,
                   resolver: Any = None) -> tuple[BaseModel, dict]:
    """Resolve and digest every file a stage's parameters name; a LUT is parsed and checked too
    (so a bad table stops validation, not the render). With a `resolver`
    (stages.storyboard.image_refs.ImageResolver: a storyboard's own stage) paths are confined like every
    other file the storyboard names; without one they are trusted config."""
    files: tuple[str, ...] = getattr(type(params), "files", ())
    updates, digests = {}, {}
    for key in files:
        value = getattr(params, key)
        if value is None:
            continue
        what, suffixes = _FILE_KINDS.get(key, (key, ()))
        if resolver is not None:
            from stages.storyboard.image_refs import ImageRefError

            try:
                path = resolver.file(value, what, suffixes)
            except ImageRefError as exc:
                raise PostChainError(f"stage {name!r}: {exc}", key=key) from None
        else:
            path = _trusted_path(name, key, value, base_dir)
        updates[key] = str(path)
        digests[key] = file_sha256(path)
        if key == "lut":
            from stages.post.color import cached_cube
            from stages.post.lut import LutError

            try:
                cached_cube(str(path), digests[key])
            except LutError as exc:
                raise PostChainError(f"stage {name!r}: lut {value!r}: {exc}", key=key) from None
    return (params.model_copy(update=updates) if updates else params), digests


def parse_stage(item: Mapping[str, Any], base_dir: Path | None = None,
                resolver: Any = None) -> PostStep:
    """{stage: interpolate, factor: 2} -> PostStep; ValueError with a user-facing message.
    Files named by parameters resolve against `base_dir` (default: the working directory), or
    through `resolver` (confined: a storyboard's own stage)."""
    if "stage" not in item:
        raise PostChainError(
            f"{dict(item)!r} names no stage; write {{stage: NAME, ...}} with NAME one of "
            f"{', '.join(sorted(STAGES))}"
        )
    name = item["stage"]
    if name not in STAGES:
        raise PostChainError(
            f"unknown post stage {name!r}{_suggest(str(name), STAGES)} "
            f"(known: {', '.join(sorted(STAGES))})"
        )
    params = {k: v for k, v in item.items() if k != "stage"}
    try:
        model = STAGES[name].params.model_validate(params)
    except ValidationError as exc:
        reasons = "; ".join(_reason(e, name) for e in exc.errors())
        raise PostChainError(f"bad parameters for stage {name!r}: {reasons}") from None
    model, digests = _resolve_files(name, model, base_dir, resolver)
    return PostStep(name, model, digests)


def _reason(error: Mapping[str, Any], name: str) -> str:
    where = ".".join(map(str, error["loc"]))
    if error["type"] == "value_error":
        message = str(error["ctx"]["error"])
        return f"{where}: {message}" if where else message
    return f"{where or name}: {error['msg']} (got {error.get('input')!r})"


def resolve_post_chain(
    items: Iterable[Any], presets: Mapping[str, list[Mapping[str, Any]]],
    base_dir: Path | None = None, resolver: Any = None,
) -> list[PostStep]:
    """Expand preset names and parse inline stages. PostChainError (a ValueError) names the
    first bad item and its index. `resolver` confines the files of inline stages (a
    storyboard's); presets from conf/post/ are trusted config and resolve against `base_dir`."""
    steps: list[PostStep] = []
    for index, item in enumerate(items):
        try:
            if isinstance(item, str):
                if item not in presets:
                    raise PostChainError(
                        f"unknown post preset {item!r}{_suggest(item, presets)} "
                        f"(presets: {', '.join(sorted(presets)) or 'none'})"
                    )
                steps.extend(parse_stage(stage, base_dir) for stage in presets[item])
            elif isinstance(item, Mapping):
                steps.append(parse_stage(item, base_dir, resolver))
            else:
                raise PostChainError(f"{item!r} is neither a preset name nor a {{stage: ...}} "
                                     "mapping")
        except PostChainError as exc:
            exc.index = index
            if isinstance(item, str):
                exc.key = None  # the preset's own stage keys are not in the storyboard
            raise
    return steps


def load_models(steps: Iterable[PostStep]) -> None:
    """Load the weights of every model-backed step now (they stay cached for the run), so a bad
    file is reported before any frame is processed. Raises stages.post.weights.ModelFileError."""
    for step in steps:
        model = getattr(step.params, "model", None)
        if model is None:
            continue
        digest = step.digests.get("model", "")
        if step.stage == "upscale":
            from stages.post.esrgan import load_upscaler

            load_upscaler(model, digest, step.params.device, step.params.tile)
        else:
            from stages.post.rife import load_rife

            load_rife(model, digest, step.params.device)


def chain_warnings(steps: Iterable[PostStep]) -> list[str]:
    """Orderings that work but give worse results, with the reason."""
    steps = list(steps)
    names = [s.stage for s in steps]
    warnings = []
    retimes = [i for i, n in enumerate(names) if n in ("interpolate", "slowmo")]
    smooths = [i for i, n in enumerate(names) if n in ("smooth", "deflicker")]
    if retimes and smooths and min(smooths) > min(retimes):
        first, later = names[min(retimes)], names[min(smooths)]
        warnings.append(
            f"post chain runs {first} before {later}: interpolation then works from the "
            f"unsmoothed frames, so their noise and flicker are baked into every synthesised "
            f"frame (and warped by the flow), and {later} afterwards averages synthesised frames "
            f"with their own sources, which hides less and ghosts more. Smooth first, then "
            f"interpolate (svi_pro: smooth -> upscale -> interpolate -> a light smooth)"
        )
    if "scene_detect" in names:
        cut_at = names.index("scene_detect")
        early = [n for n in names[:cut_at] if STAGES[n].temporal]
        if early:
            warnings.append(
                f"post chain runs {', '.join(dict.fromkeys(early))} before scene_detect: "
                f"stages before it see no cuts and may blend across them; put scene_detect first"
            )
    return warnings


def chain_frames_out(steps: Iterable[PostStep], frames: int, fps: float | None = None) -> int:
    """Frames out of the chain for `frames` in. A target-fps interpolation needs the input
    `fps`."""
    for step in steps:
        stage = STAGES[step.stage]
        if fps is None and step.stage == "interpolate" and step.params.fps is not None:
            raise ValueError("chain_frames_out needs the input fps for interpolate with a "
                             "target fps")
        frames = stage.frames_out(frames, fps, step.params)
        fps = stage.fps_out(fps, step.params) if fps is not None else None
    return frames


def chain_fps(steps: Iterable[PostStep], fps: float) -> float:
    for step in steps:
        fps = STAGES[step.stage].fps_out(fps, step.params)
    return fps


def chain_size(steps: Iterable[PostStep], width: int, height: int) -> tuple[int, int]:
    """Frame size (width, height) out of the chain."""
    for step in steps:
        width, height = STAGES[step.stage].size_out(width, height, step.params)
    return width, height


def run_post_frames(
    stream: Iterable[PostFrame], fps: float, steps: Iterable[PostStep]
) -> tuple[Iterator[PostFrame], float]:
    """The chain on a PostFrame stream (cut flags travel through); lazy like run_post_chain."""
    out: Iterator[PostFrame] = iter(stream)
    for step in steps:
        out = STAGES[step.stage].run(out, fps, step.params, step.digests)
        fps = STAGES[step.stage].fps_out(fps, step.params)
    return out, fps


def run_post_chain(
    frames: Iterable[np.ndarray], fps: float, steps: Iterable[PostStep]
) -> tuple[Iterator[np.ndarray], float]:
    """Chain the stages lazily: nothing runs until the caller iterates the frames."""
    out, fps = run_post_frames(as_post_frames(frames), fps, steps)
    return images(out), fps

"""Post-processing chains: named stages with typed parameters, run on a shot's frames.

A chain is a list of stage configs like `{stage: interpolate, factor: 2}`. Storyboards and the
`conf/post/` presets both produce such lists; `resolve_post_chain` expands preset names, checks
every parameter (and that files the stages read exist) and returns typed `PostStep`s.
`run_post_chain` streams frames through them: every stage is a generator holding at most the
window of frames it needs, so memory does not grow with the clip's length.

Stages live in stages.post.registry: each registers itself with one signature and declares what
the chain needs (frames, fps and size out, a model loader, whether it is temporal, marks cuts,
smooths or retimes); this module only composes them and never dispatches on a stage's name.

Cuts: `scene_detect` marks the first frame of every scene; the marks travel with the frames
(stages.post.stream.PostFrame) through every later stage, and every temporal stage (smooth,
deflicker, colour statistics, interpolate, slowmo) keeps its work inside scenes. A chain computes
the cut list once, wherever scene_detect sits; stages before it see no cuts (chain_warnings says
so).

Every stage predicts its output frame count, fps and frame size from its input's, so a plan knows
them before anything runs (`chain_frames_out`, `chain_fps`, `chain_size`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
from pydantic import BaseModel, ValidationError

from engine.suggest import did_you_mean
from stages.plan.keys import file_sha256
from stages.post.registry import STAGES, load_builtin_stages
from stages.post.stream import PostFrame, as_post_frames, images

__all__ = [
    "PostChainError", "PostStep", "chain_fps", "chain_frames_out", "chain_size",
    "chain_warnings", "load_models", "parse_stage", "resolve_post_chain", "run_post_chain",
    "run_post_frames",
]

# Every built-in stage registers itself when its module is imported: import them all, so code
# that imports this module sees every stage.
load_builtin_stages()


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
    return did_you_mean(name, known)


class PostChainError(ValueError):
    """A bad post chain item; `index` is the item's place in the chain as written and `key` the
    file parameter at fault (None: not a file problem), so validation can name `post[0].lut`."""

    def __init__(self, message: str, index: int | None = None, key: str | None = None):
        super().__init__(message)
        self.index, self.key = index, key


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
    """Resolve and digest every file a stage's parameters name (the params class's `files`:
    {param: (what, suffixes)}); the stage's `check_file` then parses it (a LUT), so a bad file
    stops validation, not the render. With a `resolver` (stages.storyboard.image_refs.
    ImageResolver: a storyboard's own stage) paths are confined like every other file the
    storyboard names; without one they are trusted config."""
    files: Mapping[str, tuple[str, tuple[str, ...]]] = getattr(type(params), "files", {})
    check_file = STAGES[name].check_file
    updates, digests = {}, {}
    for key, (what, suffixes) in files.items():
        value = getattr(params, key)
        if value is None:
            continue
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
        if check_file is not None:
            try:
                check_file(key, str(path), digests[key])
            except ValueError as exc:
                raise PostChainError(f"stage {name!r}: {key} {value!r}: {exc}",
                                     key=key) from None
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
    file is reported before any frame is processed: each stage's own `load` decides whether its
    parameters name a model and how to load it. Raises stages.post.weights.ModelFileError."""
    for step in steps:
        load = STAGES[step.stage].load
        if load is not None:
            load(step.params, step.digests)


def chain_warnings(steps: Iterable[PostStep]) -> list[str]:
    """Orderings that work but give worse results, with the reason; from what each stage
    declares (retimes, smooths, marks_cuts, temporal), never from its name."""
    steps = list(steps)
    names = [s.stage for s in steps]
    stages = [STAGES[n] for n in names]
    warnings = []
    retimes = [i for i, stage in enumerate(stages) if stage.retimes]
    smooths = [i for i, stage in enumerate(stages) if stage.smooths]
    if retimes and smooths and min(smooths) > min(retimes):
        first, later = names[min(retimes)], names[min(smooths)]
        warnings.append(
            f"post chain runs {first} before {later}: interpolation then works from the "
            f"unsmoothed frames, so their noise and flicker are baked into every synthesised "
            f"frame (and warped by the flow), and {later} afterwards averages synthesised frames "
            f"with their own sources, which hides less and ghosts more. Smooth first, then "
            f"interpolate (svi_pro: smooth -> upscale -> interpolate -> a light smooth)"
        )
    cut_at = next((i for i, stage in enumerate(stages) if stage.marks_cuts), None)
    if cut_at is not None:
        early = [n for n in names[:cut_at] if STAGES[n].temporal]
        if early:
            marker = names[cut_at]
            warnings.append(
                f"post chain runs {', '.join(dict.fromkeys(early))} before {marker}: "
                f"stages before it see no cuts and may blend across them; put {marker} first"
            )
    return warnings


def chain_frames_out(steps: Iterable[PostStep], frames: int, fps: float | None = None) -> int:
    """Frames out of the chain for `frames` in. A stage whose count depends on the fps (a
    target-fps interpolation) raises ValueError without the input `fps`."""
    for step in steps:
        stage = STAGES[step.stage]
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

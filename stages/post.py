"""Post-processing chains: named stages with typed parameters, run on a shot's frames.

A chain is a list of stage configs like `{stage: interpolate, factor: 2}`. Storyboards and the
`conf/post/` presets both produce such lists; `resolve_post_chain` expands preset names, checks
every parameter and returns typed `PostStep`s. `run_post_chain` streams frames through them.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Literal, Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from stages.interpolate import interpolate_frames


class InterpolateParams(BaseModel):
    """Flow-based frame interpolation; multiplies the fps by `factor`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    factor: Literal[2, 4, 8] = 2
    quality: Literal["ultrafast", "fast", "medium"] = "medium"


@dataclass(frozen=True)
class StageDef:
    params: type[BaseModel]
    # (frames, fps, params) -> (frames, new fps); frames stream through, never whole clips.
    run: Callable[[Iterable[np.ndarray], float, Any], tuple[Iterator[np.ndarray], float]]
    # Output frame count for an input count (so plans and manifests know it up front).
    frames_out: Callable[[int, Any], int]
    fps_out: Callable[[float, Any], float] = lambda fps, params: fps


def _run_interpolate(frames, fps, params: InterpolateParams):
    return interpolate_frames(frames, params.factor, params.quality), fps * params.factor


STAGES: dict[str, StageDef] = {
    "interpolate": StageDef(
        InterpolateParams,
        _run_interpolate,
        lambda n, p: n if n <= 1 else (n - 1) * p.factor + 1,
        lambda fps, p: fps * p.factor,
    ),
}


@dataclass(frozen=True)
class PostStep:
    stage: str
    params: BaseModel

    def as_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, **self.params.model_dump()}


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def parse_stage(item: Mapping[str, Any]) -> PostStep:
    """{stage: interpolate, factor: 2} -> PostStep; ValueError with a user-facing message."""
    if "stage" not in item:
        raise ValueError(
            f"{dict(item)!r} names no stage; write {{stage: NAME, ...}} with NAME one of "
            f"{', '.join(sorted(STAGES))}"
        )
    name = item["stage"]
    if name not in STAGES:
        raise ValueError(
            f"unknown post stage {name!r}{_suggest(str(name), STAGES)} "
            f"(known: {', '.join(sorted(STAGES))})"
        )
    params = {k: v for k, v in item.items() if k != "stage"}
    try:
        return PostStep(name, STAGES[name].params.model_validate(params))
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or name}: {e['msg']} (got {e.get('input')!r})"
            for e in exc.errors()
        )
        raise ValueError(f"bad parameters for stage {name!r}: {reasons}") from None


def resolve_post_chain(
    items: Iterable[Any], presets: Mapping[str, list[Mapping[str, Any]]]
) -> list[PostStep]:
    """Expand preset names and parse inline stages. ValueError names the first bad item."""
    steps: list[PostStep] = []
    for item in items:
        if isinstance(item, str):
            if item not in presets:
                raise ValueError(
                    f"unknown post preset {item!r}{_suggest(item, presets)} "
                    f"(presets: {', '.join(sorted(presets)) or 'none'})"
                )
            steps.extend(parse_stage(stage) for stage in presets[item])
        elif isinstance(item, Mapping):
            steps.append(parse_stage(item))
        else:
            raise ValueError(f"{item!r} is neither a preset name nor a {{stage: ...}} mapping")
    return steps


def chain_frames_out(steps: Iterable[PostStep], frames: int) -> int:
    for step in steps:
        frames = STAGES[step.stage].frames_out(frames, step.params)
    return frames


def chain_fps(steps: Iterable[PostStep], fps: float) -> float:
    for step in steps:
        fps = STAGES[step.stage].fps_out(fps, step.params)
    return fps


def run_post_chain(
    frames: Iterable[np.ndarray], fps: float, steps: Iterable[PostStep]
) -> tuple[Iterator[np.ndarray], float]:
    """Chain the stages lazily: nothing runs until the caller iterates the frames."""
    stream: Iterable[np.ndarray] = frames
    for step in steps:
        stream, fps = STAGES[step.stage].run(stream, fps, step.params)
    return iter(stream), fps

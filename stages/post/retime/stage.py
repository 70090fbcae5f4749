"""The `interpolate` and `slowmo` stages: parameters, predicted counts and fps, and the RIFE loader.

Both resample the clip on the exact grid of stages.post.retime.resample; they differ in what the
grid step is (interpolate: source fps / output fps; slowmo: 1/factor at the same fps) and so in
the fps they report. `method` picks how in-between frames are made; only `rife` loads weights,
and it declares its own loader so load_models preloads them before any frame is processed.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, ClassVar, Iterator, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stages.post.registry import register
from stages.post.retime.resample import BlendSynth, FlowSynth, retime, retimed_count, step_for
from stages.post.stream import PostFrame

Method = Literal["flow", "blend", "minterpolate", "rife"]
Quality = Literal["ultrafast", "fast", "medium"]


class _RetimeParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)
    files: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {"model": ("model", ())}
    method: Method = "flow"
    """flow (ours: DIS optical flow, occlusion-aware), minterpolate (ffmpeg), rife (needs `model`) or blend (cross-fade)."""
    quality: Quality = "medium"  # flow: DIS preset
    """flow / minterpolate preset: ultrafast, fast or medium."""
    model: str | None = Field(None, min_length=1)  # rife: a RIFE 4.x flownet.pkl
    """rife: a RIFE 4.x flownet.pkl (Practical-RIFE), relative to the storyboard."""
    device: Literal["auto", "cpu", "cuda"] = "auto"  # rife
    """rife: where the model runs: auto (cuda when available), cpu or cuda."""

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
    """Multiply the fps by 2, 4 or 8 (default 2 when `fps` is not given)."""
    fps: float | None = Field(None, gt=0, le=240)
    """Target fps instead of a factor (24 -> 60 is 2.5x); exact fractional timing."""

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
    """Frames made per source frame, 2..16; the fps stays, so the clip lasts factor x longer."""


def _synth(params: _RetimeParams, digests: Mapping[str, str]):
    if params.method == "flow":
        return FlowSynth(params.quality)
    if params.method == "blend":
        return BlendSynth()
    from stages.post.retime.rife import load_rife  # torch loads only for RIFE

    return load_rife(params.model, digests.get("model", ""), params.device)


def _retime(stream: Iterator[PostFrame], fps: float, step: Fraction, params: _RetimeParams,
            digests: Mapping[str, str]) -> Iterator[PostFrame]:
    if params.method == "minterpolate":
        from stages.post.retime.minterpolate import minterpolate_stream

        return minterpolate_stream(stream, fps, step)
    return retime(stream, step, _synth(params, digests))


def _load(params: _RetimeParams, digests: Mapping[str, str]) -> None:
    if params.method == "rife":
        _synth(params, digests)  # load_rife caches the model for the run


def _interpolate(stream, fps: float, params: InterpolateParams, digests) -> Iterator[PostFrame]:
    return _retime(stream, fps, params.step(fps), params, digests)


def _interpolated_count(n: int, fps: float | None, params: InterpolateParams) -> int:
    if fps is None and params.fps is not None:
        raise ValueError("chain_frames_out needs the input fps for interpolate with a "
                         "target fps")
    return retimed_count(n, params.step(fps))


def _slowmo(stream, fps: float, params: SlowmoParams, digests) -> Iterator[PostFrame]:
    return _retime(stream, fps, Fraction(1, params.factor), params, digests)


def _slowmo_count(n: int, fps: Any, params: SlowmoParams) -> int:
    return retimed_count(n, Fraction(1, params.factor))


register("interpolate", InterpolateParams, _interpolate, frames_out=_interpolated_count,
         fps_out=lambda fps, p: p.out_fps(fps), temporal=True, retimes=True, load=_load)
register("slowmo", SlowmoParams, _slowmo, frames_out=_slowmo_count, temporal=True,
         retimes=True, load=_load)

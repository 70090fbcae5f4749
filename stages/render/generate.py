"""One segment's generation call, with what keeps a render going when the engine struggles.

1. Out of memory: the engine's degrade ladder (VAE tiling, CPU offload, smaller decode chunks)
   is applied one step at a time and the call retried; each step is recorded.
2. When the ladder is exhausted, the engine's weights failed to load, or the engine cannot
   take the segment's mode (EngineModeError: "cannot do animate"), the segment renders on the
   fallback engine, adapted to what it can do: its modes (animate and v2v -> i2v from the
   reference image / the source's frame at the segment start, t2v -> i2v from a generated
   keyframe when an image engine is at hand), its size multiple and its frame count (fewer
   frames are retimed to the plan by motion interpolation, not cross-fades); the record says
   so. Other bad requests (EngineError) never fall back: they would fail the same way and hide
   a storyboard problem.
3. `camera: {apply: post}` warps the generated frames exactly along the camera path.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

import numpy as np

from engine.base import (
    Engine,
    EngineError,
    EngineLoadError,
    EngineModeError,
    GenerationRequest,
    ImageRequest,
    ProgressFn,
    is_out_of_memory,
)
from engine.depth.warp import warp_path
from engine.images import cover_resize, fit_frames

Log = Callable[[str], None]


@dataclass
class GenerationRecord:
    """How a segment's frames were made, for the manifest."""

    engine: str
    degraded: list[str] = field(default_factory=list)
    fallback_reason: str | None = None
    adapted: str | None = None
    # (rendered, planned) frame counts when a fallback's frames were retimed to the plan.
    retimed: tuple[int, int] | None = None
    # The last latent frames the engine returned (request.keep_latents); not in the manifest.
    latents: Any = None

    def as_dict(self) -> dict:
        out = {"engine": self.engine, "degraded": list(self.degraded),
               "fallback_reason": self.fallback_reason, "adapted": self.adapted}
        if self.retimed is not None:  # only then, so older manifests keep their bytes
            out["retimed"] = list(self.retimed)
        return out


def apply_camera_post(frames: np.ndarray, request: GenerationRequest) -> np.ndarray:
    """Warp each frame by the camera's move relative to the first frame."""
    if not request.camera or all(c == request.camera[0] for c in request.camera):
        return frames
    return np.stack(warp_path(list(frames), request.camera, request.depth))


def retime(frames: np.ndarray, count: int, synth: Any = None) -> np.ndarray:
    """`count` frames spread evenly over `frames`, first and last kept exactly, the ones
    between synthesised by the project's motion interpolation (stages.post.retime with the
    optical-flow interpolator), so motion moves instead of ghosting as a cross-fade would."""
    from fractions import Fraction

    from stages.post.retime.resample import FlowSynth, retime as resample
    from stages.post.stream import PostFrame

    if len(frames) == count:
        return frames
    if len(frames) == 1 or count == 1:
        return np.repeat(frames[:1], count, axis=0)
    step = Fraction(len(frames) - 1, count - 1)
    out = [f.image for f in resample((PostFrame(f, False) for f in frames), step,
                                     synth or FlowSynth("medium"), "fallback retime")]
    return np.stack(out[:count])


def adapted_mode(mode: str, spec: Any, stills: bool) -> str | None:
    """How a request of `mode` (GenerationRequest.mode) that `spec` lacks becomes one it has:
    None when it has the mode, else a note; raises EngineError when nothing fits (the message
    says why)."""
    modes = spec.modes
    if mode in modes:
        return None
    if mode == "flf2v" and "i2v" in modes:
        return "flf2v -> i2v (end image dropped)"
    if mode == "animate" and "i2v" in modes:
        return "animate -> i2v from the reference image"
    if mode == "v2v" and "i2v" in modes:
        return "v2v -> i2v from the source video's first frame"
    if mode == "t2v" and "i2v" in modes and stills:
        return "t2v -> i2v from a generated keyframe"
    why = " (no keyframe engine configured to make a start image)" if mode == "t2v" \
        and "i2v" in modes else ""
    raise EngineError(f"fallback engine {spec.name!r} cannot do {mode} "
                      f"(modes: {', '.join(sorted(modes))}){why}")


def _keyframe(request: GenerationRequest, stills: Engine) -> np.ndarray:
    image = stills.generate_image(ImageRequest(
        prompt=request.prompt, width=request.width, height=request.height, seed=request.seed,
        negative=request.negative, reference_images=request.reference_images,
        label=f"{request.shot_id} fallback keyframe"))
    return cover_resize(np.asarray(image, np.uint8), request.width, request.height)


def adapt_request(request: GenerationRequest, engine: Engine, stills: Engine | None = None
                  ) -> tuple[GenerationRequest, str | None]:
    """The nearest request `engine` can do: its mode (animate and v2v become i2v from the
    reference image / the source frame at the segment start; t2v becomes i2v from a keyframe
    `stills` generates; flf2v drops the end image), frames within its rule and maximum, size a
    multiple of its resolution step, plain pixel chaining (latents are the primary engine's
    own). Raises EngineError when it cannot do the mode at all."""
    spec = engine.spec
    request = replace(request, conditioning="pixels", context_latents=None, anchor_image=None,
                      keep_latents=0,
                      context_frames=request.context_frames if spec.context_frames else None)
    mode_note = adapted_mode(request.mode, spec, stills is not None)
    if mode_note is not None:
        if request.mode == "animate":  # the character (cast or shot image), never a pose frame
            request = replace(request, driving_video=None, driving_pose=None)
        elif request.mode == "v2v":  # the source frame at the segment's start
            request = replace(request, start_image=np.asarray(request.source_video[0]),
                              source_video=None)
        elif request.mode == "t2v":
            request = replace(request, start_image=_keyframe(request, stills))
        request = replace(request, end_image=None)
    frames = min(spec.frame_rule.snap(request.num_frames), spec.max_frames)
    step = spec.resolution_multiple
    width = max(step, request.width // step * step)
    height = max(step, request.height // step * step)
    notes = [mode_note] if mode_note else []
    if (frames, width, height) != (request.num_frames, request.width, request.height):
        notes.append(f"{spec.name} rendered {frames} frames at {width}x{height}, retimed to "
                     f"{request.num_frames} at {request.width}x{request.height} by motion "
                     f"interpolation")
    if (frames, width, height) == (request.num_frames, request.width, request.height):
        return request, "; ".join(notes) or None
    note = "; ".join(notes)
    resize = lambda img: None if img is None else cover_resize(img, width, height)
    return replace(request, num_frames=frames, width=width, height=height, camera=(),
                   start_image=resize(request.start_image), end_image=resize(request.end_image),
                   context_frames=None), note


def _fit(frames: np.ndarray, request: GenerationRequest) -> np.ndarray:
    return retime(fit_frames(frames, request.width, request.height), request.num_frames)


def _with_ladder(engine: Engine, request: GenerationRequest, progress: ProgressFn | None,
                 record: GenerationRecord, log: Log) -> np.ndarray:
    while True:
        try:
            if request.keep_latents:
                frames, record.latents = engine.generate_with_latents(request, progress)
                return frames
            return engine.generate(request, progress)
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is handled here
            if not is_out_of_memory(exc):
                raise
            step = engine.degrade()
            if step is None:
                raise
            record.degraded.append(step)
            log(f"  {request.shot_id}_{request.segment_index}: out of memory on "
                f"{engine.spec.name}; {step}, retrying")


def falls_back(exc: BaseException) -> bool:
    """Whether a configured fallback engine takes the segment after `exc` from the render
    engine: weights that did not load, out of memory after the ladder, or a mode the engine
    cannot take; never any other EngineError (a bad request fails the same way anywhere)."""
    if isinstance(exc, (EngineLoadError, EngineModeError)):
        return True
    return not isinstance(exc, EngineError) and is_out_of_memory(exc)


def generate_frames(request: GenerationRequest, engine: Engine, fallback: Engine | None,
                    progress: ProgressFn | None = None, log: Log = lambda line: None,
                    camera_apply: str = "engine", fallback_params: Mapping[str, Any] | None = None,
                    stills: Engine | None = None) -> tuple[np.ndarray, GenerationRecord]:
    """Frames for `request` from `engine`, degrading and falling back as described above.
    The fallback gets its own config's params (the storyboard's knobs are for the engine);
    `stills`: an image engine that makes a t2v shot's start image when the fallback needs one."""
    post_camera = camera_apply == "post"
    engine_request = replace(request, camera=()) if post_camera else request
    record = GenerationRecord(engine=engine.spec.name)
    try:
        frames = _with_ladder(engine, engine_request, progress, record, log)
    except Exception as exc:  # noqa: BLE001 - decide below whether a fallback may take over
        if fallback is None or not falls_back(exc):
            raise
        reason = f"{engine.spec.name}: {type(exc).__name__}: {exc}"
        log(f"  {request.shot_id}_{request.segment_index}: falling back to "
            f"{fallback.spec.name} ({reason})")
        adapted, note = adapt_request(
            replace(engine_request, params=dict(fallback_params or {}), loras=()), fallback,
            stills)
        record = GenerationRecord(engine=fallback.spec.name, degraded=record.degraded,
                                  fallback_reason=reason, adapted=note)
        # The fallback's latents (if any) live in another model's space: never hand them on.
        made = _with_ladder(fallback, adapted, progress, record, log)
        if len(made) != request.num_frames:
            record.retimed = (len(made), request.num_frames)
        frames = _fit(made, request)
        record.latents = None
    if post_camera:
        frames = apply_camera_post(frames, request)
    return frames, record

"""One segment's generation call, with what keeps a render going when the engine struggles.

1. Out of memory: the engine's degrade ladder (VAE tiling, CPU offload, smaller decode chunks)
   is applied one step at a time and the call retried; each step is recorded.
2. When the ladder is exhausted, or the engine's weights failed to load, the segment renders
   on the fallback engine (adapted to what it can do: its frame count, size multiple and
   modes), and the record says so. Bad requests (EngineError) never fall back: they would fail
   the same way and hide a storyboard problem.
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
    GenerationRequest,
    ProgressFn,
    is_out_of_memory,
)
from engine.geometry import relative_homography, warp_frame
from engine.images import cover_resize, fit_frames

Log = Callable[[str], None]


@dataclass
class GenerationRecord:
    """How a segment's frames were made, for the manifest."""

    engine: str
    degraded: list[str] = field(default_factory=list)
    fallback_reason: str | None = None
    adapted: str | None = None
    # The last latent frames the engine returned (request.keep_latents); not in the manifest.
    latents: Any = None

    def as_dict(self) -> dict:
        return {"engine": self.engine, "degraded": list(self.degraded),
                "fallback_reason": self.fallback_reason, "adapted": self.adapted}


def apply_camera_post(frames: np.ndarray, request: GenerationRequest) -> np.ndarray:
    """Warp each frame by the camera's move relative to the first frame."""
    if not request.camera or all(c == request.camera[0] for c in request.camera):
        return frames
    origin = request.camera[0]
    return np.stack([warp_frame(f, relative_homography(c, origin, request.width, request.height))
                     for f, c in zip(frames, request.camera)])


def retime(frames: np.ndarray, count: int) -> np.ndarray:
    """`count` frames spread over `frames` (linear blend between neighbours), first and last
    kept exactly."""
    if len(frames) == count:
        return frames
    if len(frames) == 1:
        return np.repeat(frames, count, axis=0)
    out = []
    for i in range(count):
        t = i * (len(frames) - 1) / max(count - 1, 1)
        lo = int(np.floor(t))
        hi = min(lo + 1, len(frames) - 1)
        w = t - lo
        blended = frames[lo].astype(np.float32) * (1 - w) + frames[hi].astype(np.float32) * w
        out.append(np.clip(blended + 0.5, 0, 255).astype(np.uint8))
    return np.stack(out)


def adapt_request(request: GenerationRequest, engine: Engine) -> tuple[GenerationRequest, str | None]:
    """The nearest request `engine` can do: frames within its rule and maximum, size a multiple
    of its resolution step, plain pixel chaining (latents are the primary engine's own). Raises
    EngineError when it cannot do the mode at all."""
    spec = engine.spec
    request = replace(request, conditioning="pixels", context_latents=None, anchor_image=None,
                      keep_latents=0,
                      context_frames=request.context_frames if spec.context_frames else None)
    if request.mode not in spec.modes:
        if request.mode == "flf2v" and "i2v" in spec.modes:
            request = replace(request, end_image=None)
        else:
            raise EngineError(f"fallback engine {spec.name!r} cannot do {request.mode} "
                              f"(modes: {', '.join(sorted(spec.modes))})")
    frames = min(spec.frame_rule.snap(request.num_frames), spec.max_frames)
    step = spec.resolution_multiple
    width = max(step, request.width // step * step)
    height = max(step, request.height // step * step)
    if (frames, width, height) == (request.num_frames, request.width, request.height):
        return request, None
    note = (f"{spec.name} rendered {frames} frames at {width}x{height}, resampled to "
            f"{request.num_frames} at {request.width}x{request.height}")
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


def generate_frames(request: GenerationRequest, engine: Engine, fallback: Engine | None,
                    progress: ProgressFn | None = None, log: Log = lambda line: None,
                    camera_apply: str = "engine", fallback_params: Mapping[str, Any] | None = None,
                    ) -> tuple[np.ndarray, GenerationRecord]:
    """Frames for `request` from `engine`, degrading and falling back as described above.
    The fallback gets its own config's params (the storyboard's knobs are for the engine)."""
    post_camera = camera_apply == "post"
    engine_request = replace(request, camera=()) if post_camera else request
    record = GenerationRecord(engine=engine.spec.name)
    try:
        frames = _with_ladder(engine, engine_request, progress, record, log)
    except EngineError:
        raise
    except Exception as exc:  # noqa: BLE001 - decide below whether a fallback may take over
        if fallback is None or not (isinstance(exc, EngineLoadError) or is_out_of_memory(exc)):
            raise
        reason = f"{engine.spec.name}: {type(exc).__name__}: {exc}"
        log(f"  {request.shot_id}_{request.segment_index}: falling back to "
            f"{fallback.spec.name} ({reason})")
        adapted, note = adapt_request(
            replace(engine_request, params=dict(fallback_params or {}), loras=()), fallback)
        record = GenerationRecord(engine=fallback.spec.name, degraded=record.degraded,
                                  fallback_reason=reason, adapted=note)
        # The fallback's latents (if any) live in another model's space: never hand them on.
        frames = _fit(_with_ladder(fallback, adapted, progress, record, log), request)
        record.latents = None
    if post_camera:
        frames = apply_camera_post(frames, request)
    return frames, record

"""The engine interface: what every video generation backend takes and returns.

The planner (stages/) turns a storyboard into `GenerationRequest`s; an `Engine` turns one request
into frames. Engines never see storyboards, files or the cache: they get pixels in and give pixels
out, so the same request always means the same video (the content key is computed from it).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np


@dataclass(frozen=True)
class FrameRule:
    """Valid frame counts are `step * n + offset` (Wan: 4n+1, LTX: 8n+1), at least `minimum`."""

    step: int = 4
    offset: int = 1
    minimum: int = 5

    def is_valid(self, frames: int) -> bool:
        return frames >= self.minimum and (frames - self.offset) % self.step == 0

    def snap(self, frames: int) -> int:
        """The nearest valid count (ties go up, so a shot never gets shorter than asked)."""
        # The smallest valid count: `minimum` itself need not be of the form step * n + offset.
        lowest = self.minimum + (self.offset - self.minimum) % self.step
        if frames <= lowest:
            return lowest
        n = (frames - self.offset) / self.step
        lower = self.offset + self.step * int(np.floor(n))
        upper = lower + self.step
        snapped = lower if (frames - lower) < (upper - frames) else upper
        return max(snapped, lowest)

    def describe(self) -> str:
        return f"{self.step}n+{self.offset}" if self.offset else f"{self.step}n"


@dataclass(frozen=True)
class EngineSpec:
    """What an engine can do; validation and planning read this before anything loads."""

    name: str
    frame_rule: FrameRule = FrameRule()
    resolution_multiple: int = 16
    default_fps: int = 16
    default_resolution: tuple[int, int] = (832, 480)
    # Longest segment one call can produce; longer shots are split into chained segments.
    max_frames: int = 81
    # "t2v" (text only), "i2v" (start image), "flf2v" (start and end image); "t2i": the engine
    # also makes stills (Engine.generate_image: generated keyframes); an engine whose modes are
    # only {"t2i"} is an image engine (SDXL, FLUX, ...).
    modes: frozenset[str] = frozenset({"t2v", "i2v", "flf2v"})
    # True when the request's shot_id / segment_index change the pixels (the preview draws them
    # on its scene card), so content keys must include them.
    draws_labels: bool = False
    # Storyboard generation keys the engine uses (steps, cfg, loras, ...); a storyboard setting
    # another one gets a warning naming the shot, since switching engines should not need edits.
    honours: frozenset[str] = frozenset()
    # Storyboard keys every shot must give for this engine (source_video for v2v, ...).
    requires: frozenset[str] = frozenset()
    # How the storyboard's camera path reaches the pixels: "exact" (the engine warps frames),
    # "guide" (a guide video warped along the path conditions generation) or "prompt" (phrases
    # like "slow zoom in" appended to the prompt). `camera: {apply: post}` adds an exact warp
    # after generation on any engine.
    camera: str = "prompt"
    # Two denoising experts (Wan 2.2 A14B): cfg_2, boundary and LoRA strength_2 apply.
    experts: int = 1
    # How segments of a long shot may hand over (storyboard `chain: {mode: ...}`):
    # "last_frame" and "overlap" need only a start image; "latent" (the previous segment's last
    # latent frame instead of its decoded pixels) and "svi" (anchor + motion latents + end latent
    # conditioning) need an engine that builds its own conditioning latents.
    chain_modes: frozenset[str] = frozenset({"last_frame", "overlap"})
    # True when the engine conditions on several known frames (VACE's video + mask), so an
    # overlap segment continues the previous segment's last K frames, not only the first of them.
    context_frames: bool = False
    # True when one generation can run over several GPUs (`engine.options.parallel`: the
    # denoiser has diffusers' context-parallel plan; Wan and LTX transformers).
    context_parallel: bool = False
    # How many cast reference images one request may carry (GenerationRequest.reference_images,
    # ImageRequest.reference_images: VACE's reference_images, IP-Adapter for stills); 0: the
    # engine cannot use references (validation warns, naming the engines that can).
    max_references: int = 0
    # True when one call renders any length in windows of max_frames, handing over between
    # windows itself (WanAnimatePipeline): the plan gives such a shot one segment, not chained
    # ones, so nothing re-anchors on a decoded last frame.
    windows: bool = False
    # True when the engine is guided by a control video (storyboard `control:`: depth, edges,
    # flow ... per frame; GenerationRequest.control_video); validation refuses `control:` on
    # other engines, naming those that take it.
    control: bool = False

    @property
    def makes_video(self) -> bool:
        return bool(self.modes - {"t2i"})

    @property
    def makes_images(self) -> bool:
        return "t2i" in self.modes


@dataclass(frozen=True)
class CameraState:
    """Where the virtual camera is, relative to the shot's first frame.

    pan_x / pan_y: fraction of the frame width / height the camera has moved (right / down
    positive, so the picture moves left / up); zoom: scale - 1 (0.1 shows the centre 10% larger);
    rotate: degrees, clockwise camera roll (the picture turns counter-clockwise);
    tilt: degrees of perspective tilt about the horizontal axis (camera tilts up positive).
    The 2.5D values need a depth map (GenerationRequest.depth; units in engine.depth.camera3d):
    dolly, truck, pedestal, orbit (degrees), dolly_zoom; focus (depth map value in focus, 1 =
    nearest) and aperture (0 = everything sharp) give depth of field.
    """

    pan_x: float = 0.0
    pan_y: float = 0.0
    zoom: float = 0.0
    rotate: float = 0.0
    tilt: float = 0.0
    dolly: float = 0.0
    truck: float = 0.0
    pedestal: float = 0.0
    orbit: float = 0.0
    dolly_zoom: float = 0.0
    focus: float = 0.0
    aperture: float = 0.0

    def as_tuple(self) -> tuple[float, ...]:
        """The 2D values, and the 2.5D ones only when any is set: content keys of storyboards
        without depth moves stay what they were before the 2.5D values existed."""
        flat = (self.pan_x, self.pan_y, self.zoom, self.rotate, self.tilt)
        return flat + self.depth_values() if self.uses_depth() else flat

    def depth_values(self) -> tuple[float, ...]:
        return (self.dolly, self.truck, self.pedestal, self.orbit, self.dolly_zoom, self.focus,
                self.aperture)

    def uses_depth(self) -> bool:
        return any(v != 0.0 for v in self.depth_values())

    def is_identity(self) -> bool:
        return all(abs(v) < 1e-12 for v in self.as_tuple())


# Called as progress(done_steps, total_steps) while an engine works on one request.
ProgressFn = Callable[[int, int], None]

# A live preview of the work in progress: a small uint8 RGB (h, w, 3) picture. A ProgressFn may
# carry one as its `preview` attribute (`progress.preview = hook`); engines that can show the
# picture while they work call it every few steps. Engines find it with `preview_hook`.
PreviewFn = Callable[[np.ndarray], None]


def preview_hook(progress: ProgressFn | None) -> PreviewFn | None:
    """The live preview hook a progress callback carries, or None."""
    hook = getattr(progress, "preview", None)
    return hook if callable(hook) else None


@dataclass(frozen=True)
class LoraRef:
    """A LoRA file applied for one request; `strength_2` is for the second (low-noise) expert."""

    path: str
    strength: float = 1.0
    strength_2: float | None = None  # None: same as `strength`

    @property
    def second(self) -> float:
        return self.strength if self.strength_2 is None else self.strength_2


@dataclass(frozen=True)
class GenerationRequest:
    """One segment to generate. Images are uint8 RGB arrays of shape (height, width, 3)."""

    prompt: str
    width: int
    height: int
    num_frames: int
    fps: int
    seed: int
    negative: str = ""
    start_image: np.ndarray | None = None
    end_image: np.ndarray | None = None
    # One state per output frame, absolute along the shot's camera path. An engine applies the
    # move relative to camera[0], because the start image already shows the view at camera[0].
    camera: Sequence[CameraState] = ()
    # Labels for engines that draw them (the preview's scene card); not part of the pixels' meaning.
    shot_id: str = ""
    segment_index: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)
    loras: Sequence[LoraRef] = ()
    # Source frames for video-to-video (restyle) and the driving (pose) video for animation,
    # uint8 (T, H, W, 3) already sized to the request.
    source_video: np.ndarray | None = None
    driving_video: np.ndarray | None = None
    # The performer's body keypoints in driving_video, float32 (T, K, 3) rows of (x, y,
    # confidence) in the request's pixels (engine.pose.estimate, with `pose.model`): the engine
    # draws its pose video from them and crops the face at the head. None: driving_video is
    # used as a ready-made pose video.
    driving_pose: np.ndarray | None = None
    # Chaining (stages.plan.build, storyboard `chain:`):
    # - "pixels": the start image is the previous segment's frame (last_frame / overlap mode);
    # - "latent": `context_latents` holds the previous segment's last latent frame, used as the
    #   first conditioning latent instead of VAE-encoding `start_image` (still given, for
    #   engines' image encoders and for a fallback engine);
    # - "svi": conditioning latents [anchor | context_latents | zeros | end], mask 1 on the
    #   anchor, motion and end latents (all four sub-frames), 0 elsewhere. The output's first
    #   1 + 4 * len(motion latents) frames re-render the anchor and the previous segment's tail.
    conditioning: str = "pixels"
    # Overlap mode: the previous segment's last K frames (uint8 (K, H, W, 3)); the request's
    # first K frames continue them (start_image is context_frames[0]).
    context_frames: np.ndarray | None = None
    # svi: the shot's anchor image (identity reference), uint8 (H, W, 3).
    anchor_image: np.ndarray | None = None
    # latent / svi: the previous segment's last latent frames as the engine returned them
    # (float32 numpy, engine-specific layout, normalised as the engine's denoiser sees them).
    context_latents: np.ndarray | None = None
    # How many final latent frames the engine should return with the frames (see
    # Engine.generate_with_latents); 0: none needed.
    keep_latents: int = 0
    # Cast references (storyboard `cast:`): uint8 RGB (H, W, 3) images of any size, at most
    # spec.max_references; identity conditioning (VACE reference_images), never frames to show.
    reference_images: Sequence[np.ndarray] = ()
    # Control video (storyboard `control:`, for engines whose spec has `control`): uint8
    # (T, H, W, 3) already extracted (depth, edges, ...) and sized to the request, one frame per
    # output frame; `control_strength` 0..1 is how strongly it guides (VACE's conditioning_scale).
    control_video: np.ndarray | None = None
    control_strength: float = 1.0
    # Depth of the shot's first view (camera state zero) for 2.5D camera moves (storyboard
    # `depth:`): float32 (H, W) relative inverse depth in 0..1, 1 = nearest, sized to the
    # request; None: no depth, the camera path's 2.5D values are zero.
    depth: np.ndarray | None = None

    @property
    def mode(self) -> str:
        if self.driving_video is not None:
            return "animate"
        if self.source_video is not None:
            return "v2v"
        if self.start_image is not None and self.end_image is not None:
            return "flf2v"
        if self.start_image is not None or self.end_image is not None:
            return "i2v"
        return "t2v"


def checked_control(request: GenerationRequest, engine: str) -> np.ndarray | None:
    """The request's control video, checked for every engine that takes one: uint8
    (num_frames, height, width, 3) and a strength from 0 to 1; None without a control video."""
    control = request.control_video
    if control is None:
        return None
    strength = request.control_strength
    if isinstance(strength, bool) or not isinstance(strength, (int, float, np.floating)) \
            or not 0.0 <= float(strength) <= 1.0:
        raise EngineError(f"control_strength={strength!r} must be a number from 0 to 1")
    shape = (request.num_frames, request.height, request.width, 3)
    if np.shape(control) != shape or np.asarray(control).dtype != np.uint8:
        raise EngineError(
            f"segment {request.shot_id}_{request.segment_index}: control_video has "
            f"{getattr(control, 'dtype', type(control).__name__)} {tuple(np.shape(control))}; "
            f"{engine} expected uint8 {shape}, one frame per output frame at the request's size")
    return np.asarray(control)


@dataclass(frozen=True)
class ImageRequest:
    """One still to generate: a shot's generated start or end keyframe (storyboard
    `image: {generate: ...}`). Returned as uint8 RGB (height, width, 3)."""

    prompt: str
    width: int
    height: int
    seed: int
    negative: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    # Cast references (IP-Adapter where the engine supports it), as GenerationRequest's.
    reference_images: Sequence[np.ndarray] = ()
    # A label for engines that draw one (the preview's card), e.g. "s02 keyframe".
    label: str = ""
    # LoRA files for this still (image engines honour `loras` like the video engines).
    loras: Sequence[LoraRef] = ()


class Engine(abc.ABC):
    """A video generation backend. Subclasses set `spec` and implement `generate`."""

    spec: EngineSpec

    @abc.abstractmethod
    def identity(self) -> dict[str, Any]:
        """Everything about the engine that changes its pixels: id, model and revision, dtype.

        Goes into every content key, so it must be JSON-serialisable and free of paths that
        differ between machines.
        """

    @abc.abstractmethod
    def generate(self, request: GenerationRequest, progress: ProgressFn | None = None) -> np.ndarray:
        """Render `request.num_frames` frames, returned as uint8 RGB of shape (T, H, W, 3).

        With a start image, frame 0 is that image; with an end image, the last frame is it
        (exactly for the preview, as closely as the model reproduces it for generative engines).
        """

    def generate_with_latents(
        self, request: GenerationRequest, progress: ProgressFn | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Frames plus the last `request.keep_latents` denoised latent frames (for the next
        segment's `context_latents`), or None where the engine has no latents to hand over.
        Default: `generate`, no latents."""
        return self.generate(request, progress), None

    def generate_image(self, request: ImageRequest, progress: ProgressFn | None = None
                       ) -> np.ndarray:
        """One still, uint8 RGB (request.height, request.width, 3), for engines whose
        spec.modes contain "t2i". Default: this engine makes no stills."""
        raise EngineError(f"engine {self.spec.name!r} cannot generate images (no t2i mode); "
                          "use an image engine such as sdxl or flux for keyframes")

    def check_params(self, params: Mapping[str, Any]) -> list[str]:
        """Problems with the engine config's `params` for this engine, each "key=value: why",
        found before anything renders (a dry run reports them too). Default: none."""
        return []

    def load(self) -> None:
        """Load weights now (once, before any segment), so that a load failure is seen outside
        the per-segment retries. Default: nothing to load."""

    def degrade(self) -> str | None:
        """Take the next step of the out-of-memory ladder (VAE tiling, offload, ...) and say
        what it did, or return None when nothing is left to try. Default: nothing."""
        return None

    def close(self) -> None:
        """Release what the engine holds (GPU memory, pipelines). Default: nothing."""


class EngineError(RuntimeError):
    """A deterministic engine failure (bad request for this engine); never retried."""


class EngineModeError(EngineError):
    """The engine cannot take this segment's mode (animate on an i2v engine, ...): deterministic,
    never retried, but a configured fallback engine that can take it after adaptation (see
    stages.render.generate.adapt_request) renders the segment instead."""


class EngineConfigError(ValueError):
    """A bad engine option; the message names the key, the value and the fix."""


class EngineLoadError(RuntimeError):
    """The engine's weights could not be loaded (missing files, wrong layout, out of memory);
    a fallback engine may take over."""


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA / CPU out-of-memory errors, whatever library raised them."""
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    return name == "OutOfMemoryError" or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())

"""The preview engine: its spec, its revision and PreviewEngine, which composes the world
(start image or scene card), the moving discs, the camera warp, the caption and the end-image
blend for each frame (the order is in engine.preview's docstring)."""

from __future__ import annotations

import math
from typing import Any, Mapping

import cv2
import numpy as np

from ..base import (
    CameraState,
    Engine,
    EngineError,
    EngineModeError,
    EngineSpec,
    FrameRule,
    GenerationRequest,
    ImageRequest,
    ProgressFn,
    preview_hook,
)
from ..depth.warp import warper_for
from ..geometry import is_identity_homography, relative_homography, warp_frame
from ..images import ImageLoadError, cover_resize
from .card import apply_caption, caption_layer, render_scene_card
from .control import blend_control, control_layer
from .motion import draw_discs, make_discs
from .reference import draw_reference, reference_inset

# Bump when the pixels of any request change (drawing, motion, blending, resizing).
REVISION = "preview-1"

# Live preview (progress.preview): every this many frames, the frame just drawn, at most
# PREVIEW_SIZE pixels on its long side.
PREVIEW_EVERY, PREVIEW_SIZE = 4, 256


def preview_frame(frame: np.ndarray) -> np.ndarray:
    """A copy of `frame` downscaled to at most PREVIEW_SIZE on its long side."""
    height, width = frame.shape[:2]
    scale = min(1.0, PREVIEW_SIZE / max(height, width))
    if scale >= 1.0:
        return frame.copy()
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)

PREVIEW_SPEC = EngineSpec(
    name="preview",
    frame_rule=FrameRule(step=4, offset=1, minimum=5),
    resolution_multiple=16,
    default_fps=16,
    default_resolution=(832, 480),
    max_frames=81,
    # t2i: generated keyframes are scene cards too (PreviewEngine.generate_image).
    modes=frozenset({"t2v", "i2v", "flf2v", "t2i"}),
    draws_labels=True,
    # The first cast reference is shown as an inset (engine.preview.reference), so identity
    # conditioning is visible, and scorable, in an animatic.
    max_references=3,
    # A control video is blended into every frame by its strength (engine.preview.control), so
    # what guided the shot is visible, and checkable, in an animatic.
    control=True,
)

# Frames over which the moving discs fade in (frame 0: invisible; frame FADE_FRAMES: opaque).
FADE_FRAMES = 4

_KNOWN_PARAMS = ("motion", "caption")


# --------------------------------------------------------------------------------------------
# The engine


def _smoothstep(x: float) -> float:
    x = min(1.0, max(0.0, x))
    return x * x * (3.0 - 2.0 * x)


class PreviewEngine(Engine):
    """Deterministic CPU animatic renderer (see the module docstring). Takes no options."""

    spec = PREVIEW_SPEC

    def __init__(self, **options: Any) -> None:
        if options:
            raise TypeError(
                f"the preview engine takes no options, got {sorted(options)}; per-request "
                f"settings go in GenerationRequest.params ({', '.join(_KNOWN_PARAMS)})"
            )

    def identity(self) -> dict[str, Any]:
        return {"engine": "preview", "revision": REVISION}

    def check_params(self, params: Mapping[str, Any]) -> list[str]:
        problems = []
        motion = params.get("motion", 1.0)
        if (
            isinstance(motion, bool)
            or not isinstance(motion, (int, float, np.integer, np.floating))
            or not math.isfinite(float(motion))
            or motion < 0
        ):
            problems.append(f"motion={motion!r}: must be a finite number >= 0")
        caption = params.get("caption", None)
        if caption is not None and not isinstance(caption, (bool, np.bool_)):
            problems.append(f"caption={caption!r}: must be true, false or absent")
        return problems

    # -- validation ---------------------------------------------------------------------------

    def _fit_image(self, image: Any, what: str, width: int, height: int) -> np.ndarray:
        if not isinstance(image, np.ndarray):
            raise EngineError(
                f"{what} must be a numpy uint8 RGB array of shape (H, W, 3), "
                f"got {type(image).__name__}"
            )
        if image.dtype != np.uint8:
            raise EngineError(
                f"{what} has dtype {image.dtype}; expected uint8 RGB of shape (H, W, 3)"
            )
        if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
            raise EngineError(
                f"{what} has shape {image.shape}; expected uint8 RGB of shape (H, W, 3)"
            )
        try:
            fitted = cover_resize(image, width, height)
        except (ImageLoadError, ValueError, cv2.error) as exc:
            raise EngineError(f"{what} could not be resized to {width}x{height}: {exc}") from exc
        if fitted.shape != (height, width, 3) or fitted.dtype != np.uint8:
            raise EngineError(
                f"{what} has shape {fitted.shape} after resizing; expected {(height, width, 3)}"
            )
        return fitted

    def _validate(self, req: GenerationRequest) -> tuple:
        spec = self.spec
        width, height = self._validate_size(req.width, req.height)

        n = req.num_frames
        rule = spec.frame_rule
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise EngineError(f"num_frames={n!r} must be an integer ({rule.describe()})")
        n = int(n)
        if not rule.is_valid(n):
            raise EngineError(
                f"num_frames={n} is not valid for the {spec.name} engine: frame counts must be "
                f"{rule.describe()} and at least {rule.minimum} (nearest valid: "
                f"{min(rule.snap(n), spec.max_frames)})"
            )
        if n > spec.max_frames:
            raise EngineError(
                f"num_frames={n} exceeds the {spec.name} engine's max_frames={spec.max_frames}; "
                "split the shot into chained segments"
            )
        if isinstance(req.fps, bool) or not isinstance(req.fps, (int, np.integer)) or req.fps <= 0:
            raise EngineError(f"fps={req.fps!r} must be a positive integer")
        if req.mode not in spec.modes:
            raise EngineModeError(f"engine {spec.name!r} cannot do {req.mode} (mode "
                                  f"{req.mode!r} is not supported; valid: {sorted(spec.modes)})")
        if isinstance(req.seed, bool) or not isinstance(req.seed, (int, np.integer)):
            raise EngineError(f"seed={req.seed!r} must be an integer")
        if not isinstance(req.prompt, str):
            raise EngineError(f"prompt must be a string, got {type(req.prompt).__name__}")

        camera = list(req.camera or ())
        if camera and len(camera) != n:
            raise EngineError(
                f"camera has {len(camera)} states but num_frames={n}: give exactly one "
                "CameraState per frame, or none for a static camera"
            )
        for i, state in enumerate(camera):
            if not isinstance(state, CameraState):
                raise EngineError(
                    f"camera[{i}] is a {type(state).__name__}, expected a CameraState"
                )

        params = dict(req.params or {})
        problems = self.check_params(params)
        if problems:
            raise EngineError(f"params.{problems[0]}")
        motion = params.get("motion", 1.0)
        caption = params.get("caption", None)

        start = end = None
        if req.start_image is not None:
            start = self._fit_image(req.start_image, "start_image", width, height)
        if req.end_image is not None:
            end = self._fit_image(req.end_image, "end_image", width, height)

        homs: list[np.ndarray] | None = None
        if camera:
            try:
                homs = [relative_homography(s, camera[0], width, height) for s in camera]
            except ValueError as exc:
                raise EngineError(f"invalid camera path: {exc}") from exc
            if all(is_identity_homography(h) for h in homs):
                homs = None
        show_caption = (start is not None) if caption is None else bool(caption)
        return width, height, n, start, end, homs, float(motion), show_caption

    def _validate_size(self, width: Any, height: Any) -> tuple[int, int]:
        mult = self.spec.resolution_multiple
        for name, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise EngineError(f"{name}={value!r} must be a positive integer multiple of {mult}")
            if value % mult:
                lower = max(mult, value // mult * mult)
                raise EngineError(
                    f"{name}={value} is not a multiple of {mult} "
                    f"(nearest valid: {lower} or {lower + mult})"
                )
        return int(width), int(height)

    def _inset(self, references: Any, width: int, height: int) -> np.ndarray | None:
        """The first reference as the inset drawn on every frame, or None without references."""
        references = list(references or ())
        if not references:
            return None
        limit = self.spec.max_references
        if len(references) > limit:
            raise EngineError(
                f"{len(references)} reference images; the {self.spec.name} engine takes at most "
                f"{limit}"
            )
        for index, image in enumerate(references):
            what = f"reference_images[{index}]"
            if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
                    or image.shape[2] != 3 or min(image.shape[:2]) < 1:
                raise EngineError(
                    f"{what} must be a numpy uint8 RGB array of shape (H, W, 3), got "
                    f"{getattr(image, 'dtype', type(image).__name__)} "
                    f"{getattr(image, 'shape', '')}"
                )
        return reference_inset(references[0], width, height)

    # -- rendering ----------------------------------------------------------------------------

    def generate(self, request: GenerationRequest, progress: ProgressFn | None = None) -> np.ndarray:
        width, height, n, start, end, homs, motion, show_caption = self._validate(request)
        inset = self._inset(request.reference_images, width, height)
        control, strength = control_layer(request)
        # 2.5D moves (request.depth): re-rendered from the depth map, occlusions and all.
        warper = warper_for(request.camera, request.depth, width, height)
        seed = int(request.seed)

        if start is not None:
            world = start
        else:
            world = render_scene_card(
                width, height, seed, request.shot_id, request.prompt, request.segment_index
            )
        discs = make_discs(seed) if motion > 0 else []
        caption = caption_layer(width, height, request.prompt) if show_caption else None

        frames = np.empty((n, height, width, 3), dtype=np.uint8)
        last = n - 1
        hook = preview_hook(progress)
        for i in range(n):
            fade = min(1.0, i / FADE_FRAMES)
            if discs and fade > 0.0:
                src = world.copy()
                draw_discs(src, discs, i / float(request.fps), motion, fade)
            else:
                src = world
            h = homs[i] if homs is not None else None
            if warper is not None:
                frames[i] = src if request.camera[i] == request.camera[0] \
                    else warper.warp(src, request.camera[i])
            elif h is None or is_identity_homography(h):
                frames[i] = src
            else:
                frames[i] = warp_frame(src, h, border="reflect")
            if control is not None:
                blend_control(frames[i], control[i], strength)

            if caption is not None and 0 < i < last:
                opacity = min(1.0, 2.0 * math.sin(math.pi * i / last))
                if opacity > 0.0:
                    apply_caption(frames[i], caption, opacity)

            if end is not None:
                w = 1.0 if i == last else _smoothstep((i / last - 0.5) / 0.5)
                if w >= 1.0:
                    frames[i] = end
                elif w > 0.0:
                    frames[i] = cv2.addWeighted(frames[i], 1.0 - w, end, w, 0.0)

            if inset is not None:
                # Last, over the end image too: the cast member is in every frame, exactly.
                draw_reference(frames[i], inset)

            if hook is not None and (i % PREVIEW_EVERY == 0 or i == last):
                hook(preview_frame(frames[i]))  # the live preview: this frame, small
            if progress is not None:
                progress(i + 1, n)
        return frames

    def generate_image(self, request: ImageRequest, progress: ProgressFn | None = None
                       ) -> np.ndarray:
        """A still: the scene card of the prompt, titled with the request's label, seeded like a
        segment's, with the first reference's inset. Same request, same pixels."""
        width, height = self._validate_size(request.width, request.height)
        if isinstance(request.seed, bool) or not isinstance(request.seed, (int, np.integer)):
            raise EngineError(f"seed={request.seed!r} must be an integer")
        if not isinstance(request.prompt, str):
            raise EngineError(f"prompt must be a string, got {type(request.prompt).__name__}")
        inset = self._inset(request.reference_images, width, height)
        image = render_scene_card(width, height, int(request.seed), request.label or "keyframe",
                                  request.prompt)
        if inset is not None:
            draw_reference(image, inset)
        if progress is not None:
            progress(1, 1)
        return image

"""Wan 2.1 / 2.2 engines: T2V, I2V (with first-last-frame), two-expert A14B, TI2V 5B, VACE,
video-to-video and Animate, all through diffusers' Wan pipelines.

Two-expert checkpoints (Wan 2.2 A14B) hold `transformer` (high noise) and `transformer_2` (low
noise) and switch at `boundary_ratio` of the schedule; `cfg_2` is the low-noise expert's guidance
and LoRA `strength_2` its LoRA weight. Text embeddings (UMT5) are computed once per distinct
prompt and negative prompt and kept with the resident pipeline.

Long shots: the Wan engines (not Animate) hand back their final latents on request; the I2V
engines can condition a segment on them ("latent", "svi": wan_conditioning beside this
module), and VACE continues the previous segment's last K frames (overlap context frames).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ...base import EngineError, EngineSpec, FrameRule, GenerationRequest, checked_control
from ...depth.warp import warp_path
from ..engine import COMMON_KEYS, DiffusersEngine
from ..model_pool import PoolEntry
from ..pipeline_io import pil
from .wan_conditioning import check_chained, installed

_WAN_KEYS = COMMON_KEYS | {"cfg", "flow_shift", "sampler"}
_TWO_EXPERT_KEYS = _WAN_KEYS | {"cfg_2", "boundary"}
_WAN_RULE = FrameRule(step=4, offset=1, minimum=5)
# Wan I2V builds its own conditioning latents (wan_conditioning), so segments can also hand over
# latents ("latent") or anchor + motion latents ("svi"), not only pixels.
_LATENT_CHAINS = frozenset({"last_frame", "overlap", "latent", "svi"})

WAN21_T2V_SPEC = EngineSpec(
    name="wan21_t2v", frame_rule=_WAN_RULE, default_fps=16, default_resolution=(832, 480),
    max_frames=81, modes=frozenset({"t2v"}), honours=_WAN_KEYS, context_parallel=True)
WAN21_I2V_SPEC = EngineSpec(
    name="wan21_i2v", frame_rule=_WAN_RULE, default_fps=16, default_resolution=(832, 480),
    max_frames=81, modes=frozenset({"i2v", "flf2v"}), honours=_WAN_KEYS,
    chain_modes=_LATENT_CHAINS, context_parallel=True)
WAN22_T2V_A14B_SPEC = EngineSpec(
    name="wan22_t2v_a14b", frame_rule=_WAN_RULE, default_fps=16,
    default_resolution=(832, 480), max_frames=81, modes=frozenset({"t2v"}),
    honours=_TWO_EXPERT_KEYS, experts=2, context_parallel=True)
WAN22_I2V_A14B_SPEC = EngineSpec(
    name="wan22_i2v_a14b", frame_rule=_WAN_RULE, default_fps=16,
    default_resolution=(832, 480), max_frames=81, modes=frozenset({"i2v", "flf2v"}),
    honours=_TWO_EXPERT_KEYS, experts=2, chain_modes=_LATENT_CHAINS, context_parallel=True)
WAN22_TI2V_5B_SPEC = EngineSpec(
    name="wan22_ti2v_5b", frame_rule=_WAN_RULE, resolution_multiple=32, default_fps=24,
    default_resolution=(1280, 704), max_frames=121, modes=frozenset({"t2v", "i2v"}),
    honours=_WAN_KEYS, context_parallel=True)
WAN_VACE_SPEC = EngineSpec(
    name="wan_vace", frame_rule=_WAN_RULE, default_fps=16, default_resolution=(832, 480),
    max_frames=81, modes=frozenset({"t2v", "i2v", "flf2v"}), honours=_WAN_KEYS,
    camera="guide", context_frames=True,
    # Cast references: VACE encodes each one as an extra latent frame in front of the video
    # (WanVACEPipeline's reference_images); the Wan VACE recipes use 1-3.
    max_references=3, control=True)
WAN_V2V_SPEC = EngineSpec(
    name="wan_v2v", frame_rule=_WAN_RULE, default_fps=16, default_resolution=(832, 480),
    max_frames=81, modes=frozenset({"v2v"}), honours=_WAN_KEYS | {"source_video", "denoise"},
    requires=frozenset({"source_video"}), camera="guide", context_parallel=True)
WAN_ANIMATE_SPEC = EngineSpec(
    name="wan_animate", frame_rule=_WAN_RULE, default_fps=30, default_resolution=(832, 480),
    max_frames=77, modes=frozenset({"animate"}),
    honours=COMMON_KEYS | {"cfg", "driving_video"},
    requires=frozenset({"driving_video", "image"}),
    # The pipeline windows a long driving video itself (max_frames per window), conditioning
    # each window on the same reference image and its own previous frames: one call per shot.
    windows=True)


WAN_DEFAULTS: dict[str, Any] = {"steps": 30, "cfg": 5.0, "cfg_2": None, "denoise": 0.7}


class _Wan(DiffusersEngine):
    defaults: ClassVar[dict[str, Any]] = WAN_DEFAULTS
    fp32_components: ClassVar[tuple[str, ...]] = ("vae", "image_encoder")
    latent_frame_axis: ClassVar[int | None] = 2  # (B, C, L, h, w)

    def text_embeddings(self, pipe, entry: PoolEntry, request: GenerationRequest) -> dict:
        (positive, negative), length = self.encoded_prompt(pipe, entry, request, 512)
        return {"prompt_embeds": positive, "negative_prompt_embeds": negative,
                "max_sequence_length": length}

    def guidance(self, request: GenerationRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"guidance_scale": float(self.param(request, "cfg"))}
        if self.spec.experts == 2:
            second = self.param(request, "cfg_2")
            kwargs["guidance_scale_2"] = float(second) if second is not None else None
        return kwargs

    def size(self, request: GenerationRequest) -> dict[str, Any]:
        return {"height": request.height, "width": request.width,
                "num_frames": request.num_frames}


class Wan21T2V(_Wan):
    """Wan 2.1 text-to-video (1.3B or 14B)."""

    spec = WAN21_T2V_SPEC
    layouts = ("WanPipeline",)

    def call_kwargs(self, pipe, entry, request):
        return {**self.text_embeddings(pipe, entry, request), **self.guidance(request),
                **self.size(request)}


class Wan22T2V(Wan21T2V):
    """Wan 2.2 A14B text-to-video: two experts split at the boundary."""

    spec = WAN22_T2V_A14B_SPEC
    required_components = ("transformer_2",)


class Wan21I2V(_Wan):
    """Wan 2.1 image-to-video (CLIP image encoder); with an end image on FLF2V checkpoints.

    Chained segments may also condition on latents (wan_conditioning): "latent" puts the
    previous segment's last latent frame where the start image's encoding would be; "svi" builds
    [anchor | motion latents | zeros | end]. The pipeline's `image` (and so the CLIP image
    embedding of Wan 2.1) is the start image, or for svi the anchor.
    """

    spec = WAN21_I2V_SPEC
    layouts = ("WanImageToVideoPipeline",)

    def check_request(self, request):
        if request.conditioning != "svi":
            super().check_request(request)
            return
        # svi needs an anchor, not a start image: the mode (from start/end images) does not say.
        self.check_conditioning(request)
        if request.anchor_image is None and request.start_image is None:
            raise EngineError(f"segment {request.shot_id}_{request.segment_index}: svi "
                              f"conditioning needs an anchor image (anchor_image or "
                              f"start_image); got neither")

    def call_context(self, pipe, entry, request):
        if request.conditioning not in ("latent", "svi"):
            return super().call_context(pipe, entry, request)
        check_chained(pipe, request, self.spec.name)
        return installed(pipe, entry, request)

    def call_kwargs(self, pipe, entry, request):
        image = request.start_image
        if request.conditioning == "svi" and request.anchor_image is not None:
            image = request.anchor_image
        kwargs = {**self.text_embeddings(pipe, entry, request), **self.guidance(request),
                  **self.size(request), "image": pil(image)}
        if request.end_image is not None:
            kwargs["last_image"] = pil(request.end_image)
        return kwargs


class Wan22I2V(Wan21I2V):
    """Wan 2.2 A14B image-to-video, two experts, optional end frame."""

    spec = WAN22_I2V_A14B_SPEC
    required_components = ("transformer_2",)


class Wan22TI2V(_Wan):
    """Wan 2.2 TI2V 5B: one checkpoint (expand_timesteps) for text- and image-to-video."""

    spec = WAN22_TI2V_5B_SPEC
    layouts = ("WanPipeline", "WanImageToVideoPipeline")
    mode_pipelines = {"t2v": "WanPipeline", "i2v": "WanImageToVideoPipeline"}

    def call_kwargs(self, pipe, entry, request):
        kwargs = {**self.text_embeddings(pipe, entry, request), **self.guidance(request),
                  **self.size(request)}
        if request.start_image is not None:
            kwargs["image"] = pil(request.start_image)
        return kwargs


def camera_guide(start: np.ndarray, request: GenerationRequest) -> list[np.ndarray]:
    """The start frame warped along the request's camera path (through the depth for 2.5D
    moves): a video that shows the move."""
    if not request.camera:
        return [start] * request.num_frames
    return warp_path([start] * len(request.camera), request.camera, request.depth)


class WanVace(_Wan):
    """Wan VACE: generation conditioned on a video and a mask.

    - start image: frame 0 known (mask 0), the rest generated (mask 1);
    - context frames (overlap chaining): the first K frames known, the previous segment's tail;
    - end image: the last frame known too (first-last-frame);
    - camera path: the frames to generate carry the start image warped along the path (a
      guide video), so the model follows the move instead of guessing it from words;
    - t2v: no known frames, grey video, mask 1;
    - cast references (request.reference_images): the pipeline's `reference_images`, which it
      fits (aspect kept, white padding) to the frame size, VAE-encodes and puts in front of the
      video latents for the denoiser (identity conditioning), dropping them before decoding.
    """

    spec = WAN_VACE_SPEC
    layouts = ("WanVACEPipeline",)
    extra_options = ("conditioning_scale",)

    def conditioning(self, request: GenerationRequest) -> tuple[list, list]:
        t, h, w = request.num_frames, request.height, request.width
        # A control video (depth, edges, flow ...) is what the frames to generate follow,
        # instead of the camera guide (not built then); known frames below keep their slots.
        video = checked_control(request, "wan_vace")
        if video is None and request.start_image is not None:
            video = camera_guide(request.start_image, request)
        elif video is None:
            video = [np.full((h, w, 3), 127, np.uint8)] * t
        video = list(video)
        known = np.zeros((h, w, 3), np.uint8)
        unknown = np.full((h, w, 3), 255, np.uint8)
        mask = [unknown] * t
        if request.start_image is not None:
            video[0], mask[0] = request.start_image, known
        # Overlap chaining: the previous segment's last K frames are the first K frames, known,
        # so motion continues across the join instead of restarting from one still frame.
        context = self.context_frames(request)
        for index, frame in enumerate(context):
            video[index], mask[index] = frame, known
        if request.end_image is not None:
            video[-1], mask[-1] = request.end_image, known
        return [pil(f) for f in video], [pil(m) for m in mask]

    def context_frames(self, request: GenerationRequest) -> list[np.ndarray]:
        context = request.context_frames
        if context is None or len(context) == 0:
            return []
        room = request.num_frames - (1 if request.end_image is not None else 0) - 1
        shape = (request.height, request.width, 3)
        if np.ndim(context) != 4 or tuple(np.shape(context)[1:]) != shape or len(context) > room:
            raise EngineError(
                f"segment {request.shot_id}_{request.segment_index}: context_frames has shape "
                f"{tuple(np.shape(context))}; wan_vace needs (K, {shape[0]}, {shape[1]}, 3) "
                f"uint8 with K <= {room} (the segment's {request.num_frames} frames, less one "
                f"to generate{' and the end frame' if request.end_image is not None else ''}); "
                f"lower the chain overlap or lengthen the segment")
        return list(np.asarray(context, dtype=np.uint8))

    def call_kwargs(self, pipe, entry, request):
        video, mask = self.conditioning(request)
        kwargs = {**self.text_embeddings(pipe, entry, request), **self.guidance(request),
                  **self.size(request), "video": video, "mask": mask,
                  "conditioning_scale": float(request.control_strength
                                              if request.control_video is not None
                                              else self.options.extra.get("conditioning_scale",
                                                                          1.0))}
        if request.reference_images:
            # A flat list of PIL images: one batch (the pipeline's single-video case).
            kwargs["reference_images"] = [pil(r) for r in request.reference_images]
        return kwargs


class WanV2V(_Wan):
    """Wan video-to-video: restyle the storyboard's `source_video` at `denoise` strength (0 keeps
    the source, 1 ignores it). A camera path warps the source frames first (a guide)."""

    spec = WAN_V2V_SPEC
    # A Wan T2V folder (what the README recommends) loads as WanPipeline; the video-to-video
    # pipeline is built from it with from_pipe, sharing the weights.
    layouts = ("WanVideoToVideoPipeline", "WanPipeline")
    mode_pipelines = {"v2v": "WanVideoToVideoPipeline"}

    def call_kwargs(self, pipe, entry, request):
        source = request.source_video
        if source is None or len(source) != request.num_frames:
            raise EngineError(f"segment {request.shot_id}_{request.segment_index}: wan_v2v needs "
                              f"{request.num_frames} source frames, got "
                              f"{0 if source is None else len(source)}")
        frames = list(source)
        if request.camera:  # the source warped along the path first: a guide
            frames = warp_path(frames, request.camera, request.depth)
        kwargs = {**self.text_embeddings(pipe, entry, request),
                  "guidance_scale": float(self.param(request, "cfg")),
                  "height": request.height, "width": request.width,
                  "video": [pil(f) for f in frames],
                  "strength": float(self.param(request, "denoise"))}
        return kwargs


class WanAnimate(_Wan):
    """Wan Animate: the reference image's character performs the storyboard's `driving_video`.

    - pose video: with the performer's keypoints (`request.driving_pose`, from the local pose
      model `pose.model`), the OpenPose-style skeleton drawn from them (engine.pose.draw);
      without, the driving video as given (a ready-made pose rendering);
    - face video: a face track of the driving video, smoothed and cropped square at the
      transformer's `motion_encoder_size` (engine.pose.face): around the head keypoints when
      there are keypoints, else from a detector (YuNet with option `face_detector: <onnx
      file>`, else OpenCV's Haar cascade where the installed OpenCV has it, else the frame
      centre with a logged note);
    - reference: the request's start image, which the plan keeps at the shot's image (or cast
      image) for the whole shot: never a previous segment's last frame, so identity cannot drift;
    - long shots: one call over the whole driving video; the pipeline renders windows of
      max_frames and hands over its own last `handover_frames` (1 or 5) frames between them
      (diffusers' prev_segment_conditioning_frames).
    """

    spec = WAN_ANIMATE_SPEC
    layouts = ("WanAnimatePipeline",)
    latent_frame_axis = None  # the pipeline denoises window by window; no latents to hand over
    extra_options = ("face_detector", "handover_frames")
    FACE = 512  # Wan2.2-Animate-14B's motion_encoder_size, when the config does not say

    def identity(self):
        extra = self.options.extra
        # The face video is part of the pixels: its method, and any option changing it.
        return {**super().identity(), "face_video": "track-v1",
                **({"face_detector": str(extra["face_detector"])}
                   if extra.get("face_detector") else {}),
                **({"handover_frames": int(extra["handover_frames"])}
                   if "handover_frames" in extra else {})}

    def handover(self) -> int:
        value = self.options.extra.get("handover_frames", 1)
        if value not in (1, 5):
            raise EngineError(f"engine.options.handover_frames={value!r}: wan_animate hands over "
                              f"1 or 5 frames between windows (WanAnimatePipeline); use 1 or 5")
        return int(value)

    def detector(self):
        from ...pose.face import yunet_detector

        model = self.options.extra.get("face_detector")
        return yunet_detector(str(model)) if model else None  # None: pose.face's default

    def call_kwargs(self, pipe, entry, request):
        import logging

        from ...pose.face import face_video

        if request.start_image is None or request.driving_video is None:
            raise EngineError(f"segment {request.shot_id}_{request.segment_index}: wan_animate "
                              f"needs a start image and a driving_video")
        driving = list(request.driving_video)
        size = int(getattr(pipe.transformer.config, "motion_encoder_size", self.FACE))
        keypoints = request.driving_pose
        if keypoints is None:
            pose = driving
            faces, notes = face_video(driving, size, self.detector())
        else:
            from ...pose.draw import draw_pose

            if len(keypoints) != len(driving):
                raise EngineError(f"segment {request.shot_id}_{request.segment_index}: "
                                  f"{len(keypoints)} frames of keypoints for {len(driving)} "
                                  "driving frames; they must match one to one")
            pose = [draw_pose(points, request.width, request.height) for points in keypoints]
            faces, notes = face_video(driving, size, keypoints=keypoints)
        for note in notes:
            logging.getLogger(__name__).warning("segment %s_%s: %s", request.shot_id,
                                                request.segment_index, note)
        window = min(request.num_frames, self.spec.max_frames)
        return {**self.text_embeddings(pipe, entry, request),
                "guidance_scale": float(self.param(request, "cfg")),
                "height": request.height, "width": request.width,
                "image": pil(request.start_image), "pose_video": [pil(f) for f in pose],
                "face_video": [pil(f) for f in faces], "mode": "animate",
                "segment_frame_length": window,
                "prev_segment_conditioning_frames": self.handover()}


# What this family registers (engine.diffusers.families): its engines, spec beside class.
ENGINES = (Wan21T2V, Wan21I2V, Wan22T2V, Wan22I2V, Wan22TI2V, WanVace, WanV2V, WanAnimate)

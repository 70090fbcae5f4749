"""Stable Video Diffusion: image-to-video only, no prompt; the usual fallback engine.

SVD makes at most 25 frames from a start image. `cfg` sets the guidance ramp's top
(min_guidance 1.0 -> max_guidance cfg); the request's fps conditions the motion. The VAE
decodes in chunks; the out-of-memory ladder halves the chunk.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...base import EngineSpec, FrameRule
from ..engine import DiffusersEngine
from ..pipeline_io import pil

SVD_SPEC = EngineSpec(
    name="svd", frame_rule=FrameRule(step=1, offset=0, minimum=2), resolution_multiple=64,
    default_fps=7, default_resolution=(1024, 576), max_frames=25,
    modes=frozenset({"i2v"}), honours=frozenset({"steps", "seed", "cfg"}))


class SVD(DiffusersEngine):
    spec = SVD_SPEC
    layouts = ("StableVideoDiffusionPipeline",)
    defaults: ClassVar[dict[str, Any]] = {"steps": 25, "cfg": 3.0, "motion_bucket_id": 127,
                                          "noise_aug_strength": 0.02}

    def call_kwargs(self, pipe, entry, request):
        return {"image": pil(request.start_image), "height": request.height,
                "width": request.width, "num_frames": request.num_frames,
                "fps": max(1, int(request.fps) - 1),  # SVD is conditioned on fps - 1
                "min_guidance_scale": 1.0, "max_guidance_scale": float(self.param(request, "cfg")),
                "motion_bucket_id": int(self.param(request, "motion_bucket_id")),
                "noise_aug_strength": float(self.param(request, "noise_aug_strength")),
                "decode_chunk_size": getattr(pipe, "_reelforge_decode_chunk", 8)}


# What this family registers (engine.diffusers.families): its engines, spec beside class.
ENGINES = (SVD,)

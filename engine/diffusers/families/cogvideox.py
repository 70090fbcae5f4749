"""CogVideoX (2B / 5B, 1.5): text-to-video, or image-to-video with an I2V checkpoint.

Which one a folder holds is read from its model_index.json; asking a t2v checkpoint for a start
image is an EngineError naming the segment. Text embeddings (T5) are memoised per prompt.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...base import EngineError, EngineSpec, FrameRule
from ..engine import COMMON_KEYS, DiffusersEngine
from ..pipeline_io import pil

COGVIDEOX_SPEC = EngineSpec(
    name="cogvideox", frame_rule=FrameRule(step=8, offset=1, minimum=9), default_fps=8,
    default_resolution=(720, 480), max_frames=49, modes=frozenset({"t2v", "i2v"}),
    honours=COMMON_KEYS | {"cfg"})


class CogVideoX(DiffusersEngine):
    spec = COGVIDEOX_SPEC
    layouts = ("CogVideoXPipeline", "CogVideoXImageToVideoPipeline")
    defaults: ClassVar[dict[str, Any]] = {"steps": 50, "cfg": 6.0}

    def check_request(self, request):
        super().check_request(request)
        is_i2v = self.source.pipeline_class == "CogVideoXImageToVideoPipeline"
        if is_i2v != (request.start_image is not None):
            need = "a start image (image: or start: chain)" if is_i2v else "no start image"
            raise EngineError(
                f"segment {request.shot_id}_{request.segment_index}: engine.model "
                f"{self.source.name!r} is a {self.source.pipeline_class} checkpoint and needs "
                f"{need}; use a CogVideoX {'T2V' if is_i2v else 'I2V'} checkpoint for this shot")

    def call_kwargs(self, pipe, entry, request):
        (embeds, negative), length = self.encoded_prompt(pipe, entry, request, 226)
        kwargs = {"prompt_embeds": embeds, "negative_prompt_embeds": negative,
                  "guidance_scale": float(self.param(request, "cfg")),
                  "height": request.height, "width": request.width,
                  "num_frames": request.num_frames, "max_sequence_length": length}
        if request.start_image is not None:
            kwargs["image"] = pil(request.start_image)
        return kwargs


# What this family registers (engine.diffusers.families): its engines, spec beside class.
ENGINES = (CogVideoX,)

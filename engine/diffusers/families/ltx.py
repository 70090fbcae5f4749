"""LTX-Video: text- and image-to-video from one checkpoint (frame rule 8n+1, sizes in 32s).

The loaded LTXPipeline serves t2v; i2v uses LTXImageToVideoPipeline built from it with
`from_pipe`, so the weights load once. Text embeddings (T5) are memoised per prompt.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...base import EngineSpec, FrameRule
from ..engine import COMMON_KEYS, DiffusersEngine
from ..pipeline_io import pil

LTX_SPEC = EngineSpec(
    name="ltx", frame_rule=FrameRule(step=8, offset=1, minimum=9), resolution_multiple=32,
    default_fps=24, default_resolution=(704, 480), max_frames=161,
    modes=frozenset({"t2v", "i2v"}), honours=COMMON_KEYS | {"cfg"}, context_parallel=True)


class LTX(DiffusersEngine):
    spec = LTX_SPEC
    layouts = ("LTXPipeline", "LTXImageToVideoPipeline")
    mode_pipelines = {"t2v": "LTXPipeline", "i2v": "LTXImageToVideoPipeline"}
    defaults: ClassVar[dict[str, Any]] = {"steps": 40, "cfg": 3.0}

    def call_kwargs(self, pipe, entry, request):
        (embeds, mask, negative, negative_mask), length = self.encoded_prompt(
            pipe, entry, request, 128)
        kwargs = {"prompt_embeds": embeds, "prompt_attention_mask": mask,
                  "negative_prompt_embeds": negative, "negative_prompt_attention_mask": negative_mask,
                  "guidance_scale": float(self.param(request, "cfg")),
                  "height": request.height, "width": request.width,
                  "num_frames": request.num_frames, "frame_rate": request.fps,
                  "max_sequence_length": length}
        if request.start_image is not None:
            kwargs["image"] = pil(request.start_image)
        return kwargs


# What this family registers (engine.diffusers.families): its engines, spec beside class.
ENGINES = (LTX,)

"""LTX-Video: text- and image-to-video from one checkpoint (frame rule 8n+1, sizes in 32s).

The loaded LTXPipeline serves t2v; i2v uses LTXImageToVideoPipeline built from it with
`from_pipe`, so the weights load once. Text embeddings (T5) are memoised per prompt.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .diffusers_engine import DiffusersEngine, pil
from .diffusers_specs import DIFFUSERS_SPECS


class LTX(DiffusersEngine):
    spec = DIFFUSERS_SPECS["ltx"][0]
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

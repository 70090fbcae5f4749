"""Stable Diffusion 3.5 (large, large-turbo, medium): a text-to-image engine for generated
keyframes (StableDiffusion3Pipeline: an MMDiT with two CLIP encoders and T5).

`cfg` is classifier-free guidance (3.5-4.5 for large; large-turbo: cfg 0, 4 steps). Embeddings
of the three text encoders are memoised per prompt. Cast references are not used: diffusers'
SD3 IP-Adapter (SD3IPAdapterMixin, a SigLIP encoder) is not wired here (max_references 0).
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...base import EngineSpec
from ..stills import STILL_KEYS, StillEngine

SD35_SPEC = EngineSpec(
    name="sd35", resolution_multiple=16, default_resolution=(1216, 832),
    modes=frozenset({"t2i"}), honours=STILL_KEYS)


class SD35(StillEngine):
    spec = SD35_SPEC
    layouts = ("StableDiffusion3Pipeline",)
    defaults: ClassVar[dict[str, Any]] = {"steps": 28, "cfg": 4.5}

    def image_kwargs(self, pipe, entry, request):
        cfg = float(self.param(request, "cfg"))
        guided = cfg > 1.0
        length = self.options.max_sequence_length or 256

        def encode():
            return pipe.encode_prompt(prompt=request.prompt, prompt_2=None, prompt_3=None,
                                      device=pipe._execution_device,
                                      do_classifier_free_guidance=guided,
                                      negative_prompt=request.negative or "",
                                      max_sequence_length=length)

        embeds, negative, pooled, negative_pooled = entry.embedding(
            self.text_key(request, guided, length), encode)
        kwargs = {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled,
                  "guidance_scale": cfg, "height": request.height, "width": request.width,
                  "max_sequence_length": length}
        if guided:
            kwargs.update(negative_prompt_embeds=negative,
                          negative_pooled_prompt_embeds=negative_pooled)
        return kwargs


# What this family registers (engine.diffusers.families): its engines, spec beside class.
ENGINES = (SD35,)

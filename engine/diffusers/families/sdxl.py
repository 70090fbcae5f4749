"""Stable Diffusion XL and SDXL-Turbo: text-to-image engines for generated keyframes.

Both load StableDiffusionXLPipeline (a UNet with two CLIP text encoders). `cfg` is the
classifier-free guidance scale (SDXL 5-7; Turbo is distilled for cfg 0 and 1-4 steps, which
turns guidance, and with it the negative prompt, off). Text embeddings are memoised per prompt.
Cast references reach the UNet through an IP-Adapter (`engine.options.ip_adapter`,
engine.diffusers.ip_adapter), the one way SDXL conditions on an image of the character.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...base import EngineSpec
from ..stills import STILL_KEYS, StillEngine

SDXL_SPEC = EngineSpec(
    name="sdxl", resolution_multiple=8, default_resolution=(1216, 832),
    modes=frozenset({"t2i"}), honours=STILL_KEYS, max_references=3)
SDXL_TURBO_SPEC = EngineSpec(
    name="sdxl_turbo", resolution_multiple=8, default_resolution=(512, 512),
    modes=frozenset({"t2i"}), honours=STILL_KEYS, max_references=3)


class SDXL(StillEngine):
    spec = SDXL_SPEC
    layouts = ("StableDiffusionXLPipeline",)
    defaults: ClassVar[dict[str, Any]] = {"steps": 30, "cfg": 6.0}
    extra_options = ("ip_adapter",)

    def image_kwargs(self, pipe, entry, request):
        cfg = float(self.param(request, "cfg"))
        guided = cfg > 1.0  # the pipeline's own rule for classifier-free guidance

        def encode():
            return pipe.encode_prompt(prompt=request.prompt, device=pipe._execution_device,
                                      num_images_per_prompt=1,
                                      do_classifier_free_guidance=guided,
                                      negative_prompt=request.negative or None)

        embeds, negative, pooled, negative_pooled = entry.embedding(
            self.text_key(request, guided), encode)
        kwargs = {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled,
                  "guidance_scale": cfg, "height": request.height, "width": request.width,
                  **self.references(pipe, request)}
        if guided:
            kwargs.update(negative_prompt_embeds=negative,
                          negative_pooled_prompt_embeds=negative_pooled)
        return kwargs


class SDXLTurbo(SDXL):
    """SDXL-Turbo (adversarial distillation): 1-4 steps at cfg 0, 512x512."""

    spec = SDXL_TURBO_SPEC
    defaults: ClassVar[dict[str, Any]] = {"steps": 2, "cfg": 0.0}


# What this family registers (engine.diffusers.families): its engines, spec beside class.
ENGINES = (SDXL, SDXLTurbo)

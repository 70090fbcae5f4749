"""FLUX.1 (dev and schnell): a text-to-image engine for generated keyframes (FluxPipeline).

FLUX is guidance-distilled: `cfg` is the guidance fed to the transformer (dev: 3.5; schnell
ignores it, 4 steps). The negative prompt takes effect only with true classifier-free guidance,
`true_cfg` > 1 in the engine's params (twice the compute). CLIP + T5 embeddings are memoised per
prompt. Cast references reach the transformer through an XLabs-format IP-Adapter
(`engine.options.ip_adapter`, engine.diffusers.ip_adapter; diffusers' FluxIPAdapterMixin), as on
SDXL; without one the references are ignored (the still is made from the prompt alone).
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...base import EngineSpec
from ..stills import STILL_KEYS, StillEngine

FLUX_SPEC = EngineSpec(
    name="flux", resolution_multiple=16, default_resolution=(1344, 768),
    modes=frozenset({"t2i"}), honours=STILL_KEYS, max_references=3)


class Flux(StillEngine):
    spec = FLUX_SPEC
    layouts = ("FluxPipeline",)
    defaults: ClassVar[dict[str, Any]] = {"steps": 28, "cfg": 3.5, "true_cfg": 1.0}
    extra_options = ("ip_adapter",)

    def text(self, pipe, entry, request, text: str, length: int):
        def encode():
            return pipe.encode_prompt(prompt=text, prompt_2=None,
                                      device=pipe._execution_device,
                                      max_sequence_length=length)[:2]

        return entry.embedding(self.text_key(request, text, length), encode)

    def image_kwargs(self, pipe, entry, request):
        length = self.options.max_sequence_length or 512
        embeds, pooled = self.text(pipe, entry, request, request.prompt, length)
        kwargs = {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled,
                  "guidance_scale": float(self.param(request, "cfg")),
                  "height": request.height, "width": request.width,
                  "max_sequence_length": length, **self.references(pipe, request)}
        true_cfg = float(self.param(request, "true_cfg"))
        if true_cfg > 1.0 and request.negative:
            negative, negative_pooled = self.text(pipe, entry, request, request.negative, length)
            kwargs.update(true_cfg_scale=true_cfg, negative_prompt_embeds=negative,
                          negative_pooled_prompt_embeds=negative_pooled)
        return kwargs


# What this family registers (engine.diffusers.families): its engines, spec beside class.
ENGINES = (Flux,)

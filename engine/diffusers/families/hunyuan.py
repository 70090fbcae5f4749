"""HunyuanVideo: text-to-video and image-to-video (frame rule 4n+1).

HunyuanVideo is guidance-distilled: `embedded_guidance` is the scale fed to the network
(default 6.0); `cfg` > 1 with a negative prompt turns on true classifier-free guidance on top
(twice the compute). The Llama + CLIP text encoders run once per distinct prompt.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...base import EngineSpec, FrameRule
from ..engine import COMMON_KEYS, DiffusersEngine
from ..pipeline_io import pil

_HUNYUAN_KEYS = COMMON_KEYS | {"cfg", "embedded_guidance", "flow_shift"}
HUNYUAN_T2V_SPEC = EngineSpec(
    name="hunyuan_t2v", frame_rule=FrameRule(step=4, offset=1, minimum=5), default_fps=24,
    default_resolution=(848, 480), max_frames=129, modes=frozenset({"t2v"}),
    honours=_HUNYUAN_KEYS)
HUNYUAN_I2V_SPEC = EngineSpec(
    name="hunyuan_i2v", frame_rule=FrameRule(step=4, offset=1, minimum=5), default_fps=24,
    default_resolution=(848, 480), max_frames=129, modes=frozenset({"i2v"}),
    honours=_HUNYUAN_KEYS)


class _Hunyuan(DiffusersEngine):
    defaults: ClassVar[dict[str, Any]] = {"steps": 30, "cfg": 1.0, "embedded_guidance": 6.0}

    def text(self, pipe, entry, text: str) -> tuple:
        def encode():
            return pipe.encode_prompt(prompt=text, prompt_2=text,
                                      device=pipe._execution_device)

        return entry.embedding(("llama+clip", text), encode)

    def call_kwargs(self, pipe, entry, request):
        prompt = self.prompt_text(request)
        embeds, pooled, mask = self.text(pipe, entry, prompt)[:3]
        kwargs = {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled,
                  "prompt_attention_mask": mask,
                  "guidance_scale": float(self.param(request, "embedded_guidance")),
                  "height": request.height, "width": request.width,
                  "num_frames": request.num_frames}
        cfg = float(self.param(request, "cfg"))
        if cfg > 1.0 and request.negative:
            neg, neg_pooled, neg_mask = self.text(pipe, entry, request.negative)[:3]
            kwargs.update(true_cfg_scale=cfg, negative_prompt_embeds=neg,
                          negative_pooled_prompt_embeds=neg_pooled,
                          negative_prompt_attention_mask=neg_mask)
        return kwargs


class HunyuanT2V(_Hunyuan):
    spec = HUNYUAN_T2V_SPEC
    layouts = ("HunyuanVideoPipeline",)


class HunyuanI2V(_Hunyuan):
    """The I2V text encoder (LLaVA) reads the start image with the prompt, so its embeddings
    depend on both and are not memoised: the pipeline encodes them on each call."""

    spec = HUNYUAN_I2V_SPEC
    layouts = ("HunyuanVideoImageToVideoPipeline",)

    def call_kwargs(self, pipe, entry, request):
        kwargs = {"prompt": self.prompt_text(request), "image": pil(request.start_image),
                  "guidance_scale": float(self.param(request, "embedded_guidance")),
                  "height": request.height, "width": request.width,
                  "num_frames": request.num_frames}
        cfg = float(self.param(request, "cfg"))
        if cfg > 1.0 and request.negative:
            kwargs.update(true_cfg_scale=cfg, negative_prompt=request.negative)
        return kwargs


# What this family registers (engine.diffusers.families): its engines, spec beside class.
ENGINES = (HunyuanT2V, HunyuanI2V)

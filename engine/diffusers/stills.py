"""The base of the text-to-image engines (families sdxl, flux, sd3): DiffusersEngine with
spec.modes {"t2i"}, for generated keyframes. Video requests are refused by
DiffusersEngine.check_request; `generate_image` runs a still through the same loading, pool,
LoRAs, seeded generator and progress as a segment, and a family fills `image_kwargs`. Families that wire an IP-Adapter list `ip_adapter` in extra_options and take the
`engine.options.ip_adapter` option (engine.diffusers.ip_adapter) and cast references.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..base import EngineError, ImageRequest, ProgressFn
from ..images import fit_frames
from . import ip_adapter
from .engine import COMMON_KEYS, DiffusersEngine, to_uint8
from .model_pool import PoolEntry

# Storyboard keys a still honours: steps, seed, negative, loras, cfg.
STILL_KEYS = COMMON_KEYS | {"cfg"}


class StillEngine(DiffusersEngine):
    """A diffusers text-to-image engine (see the module docstring)."""

    # Families that wire an IP-Adapter set extra_options = ("ip_adapter",) (tested with a tiny
    # adapter in tests/engine/diffusers/test_image_engines.py).

    def __init__(self, pool=None, **options: Any) -> None:
        super().__init__(pool, **options)
        self.ip_adapter = ip_adapter.parse(self.options.extra.get("ip_adapter"), self.spec.name)

    def identity(self) -> dict[str, Any]:
        ident = super().identity()
        if self.ip_adapter is not None:
            ident["ip_adapter"] = self.ip_adapter.identity()
        return ident

    @property
    def pool_key(self) -> tuple:
        adapter = self.ip_adapter
        return super().pool_key + ((str(adapter.file), str(adapter.image_encoder))
                                   if adapter is not None else (),)

    def prepare_pipeline(self, pipe) -> None:
        if self.ip_adapter is not None:
            ip_adapter.load(pipe, self.ip_adapter)

    def call_kwargs(self, pipe, entry, request):
        # Unreachable: check_request refuses video requests for still engines first.
        raise EngineError(f"engine {self.spec.name!r} makes stills, not video")

    def references(self, pipe, request: ImageRequest) -> dict[str, Any]:
        """ip_adapter_image for this call (nothing without an adapter)."""
        if request.reference_images and self.ip_adapter is None:
            return {}  # validation warned; the still is made from the prompt alone
        return ip_adapter.call_kwargs(pipe, self.ip_adapter, list(request.reference_images))

    def image_kwargs(self, pipe, entry: PoolEntry, request: ImageRequest) -> dict[str, Any]:
        """Pipeline arguments for a still besides generator, steps, output and callbacks;
        families whose spec.modes hold "t2i" fill it."""
        raise EngineError(f"engine {self.spec.name!r} cannot generate images (no t2i mode); "
                          "use an image engine such as sdxl or flux for keyframes")

    def check_image_request(self, request: ImageRequest) -> None:
        where = f"still {request.label!r}" if request.label else "still"
        if not self.spec.makes_images:
            self.image_kwargs(None, None, request)  # raises: no t2i mode
        mult = self.spec.resolution_multiple
        for name in ("width", "height"):
            value = getattr(request, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or \
                    value <= 0 or value % mult:
                raise EngineError(f"{where}: {name}={value!r}; engine {self.spec.name!r} needs a "
                                  f"positive multiple of {mult}")
        if isinstance(request.seed, bool) or not isinstance(request.seed, (int, np.integer)):
            raise EngineError(f"{where}: seed={request.seed!r} must be an integer")
        self.check_references(request.reference_images, where)

    def generate_image(self, request: ImageRequest, progress: ProgressFn | None = None
                       ) -> np.ndarray:
        """One still, uint8 RGB (request.height, request.width, 3): the pipeline's first image,
        from a seeded CPU generator (same request, same pixels), progress per step."""
        import torch

        self.check_image_request(request)
        entry = self._acquire()
        try:
            with entry.lock:  # a pipeline serves one call at a time
                pipe = self.pipeline_for(entry, "t2i")
                steps = int(self.param(request, "steps"))
                with self._per_call_state(pipe, entry, request):
                    kwargs = self.image_kwargs(pipe, entry, request)

                    def on_step(_pipe, i, _t, _tensors):
                        if progress is not None:
                            progress(i + 1, steps)
                        return {}

                    generator = torch.Generator("cpu").manual_seed(int(request.seed))
                    with torch.inference_mode():
                        output = pipe(**kwargs, num_inference_steps=steps, generator=generator,
                                      output_type="np", callback_on_step_end=on_step)
                image = to_uint8(output.images)[0]
        finally:
            self.pool.release(entry)
        return fit_frames(image[None], request.width, request.height)[0]

    def text_key(self, request: ImageRequest, *extra: Any) -> tuple:
        """Memo key of a still's text embeddings: LoRAs may patch the text encoders too."""
        return (self.spec.name, request.prompt, request.negative,
                tuple((lora.path, lora.strength) for lora in request.loras), *extra)

"""What a diffusers engine refuses before it touches a pipeline: video requests on a stills
engine, conditioning it cannot build, too many or malformed cast references, a mode its spec
lacks. Deterministic failures (EngineError): retrying does not help, a fallback engine may."""

from __future__ import annotations

import numpy as np

from ..base import EngineError, EngineModeError, EngineSpec, GenerationRequest


class RequestChecks:
    """Mixed into DiffusersEngine, which sets `spec`."""

    spec: EngineSpec

    def check_request(self, request: GenerationRequest) -> None:
        if not self.spec.makes_video:
            raise EngineError(
                f"engine {self.spec.name!r} makes stills, not video (segment {request.shot_id}_"
                f"{request.segment_index}); use it for generated keyframes (`image: {{generate: "
                f"..., engine: {self.spec.name}}}`) and a video engine for the render")
        self.check_conditioning(request)
        self.check_references(request.reference_images, f"segment {request.shot_id}_"
                              f"{request.segment_index}")
        if request.mode not in self.spec.modes:
            raise EngineModeError(
                f"engine {self.spec.name!r} cannot do {request.mode} (segment "
                f"{request.shot_id}_{request.segment_index}); it supports "
                f"{', '.join(sorted(self.spec.modes))}")

    def check_references(self, references, where: str) -> None:
        """Cast references: at most spec.max_references, each uint8 RGB (H, W, 3). An engine
        that uses none (max_references 0) ignores them: they are identity hints, validation has
        warned about them, and a fallback engine must still take the request."""
        references = list(references or ())
        limit = self.spec.max_references
        if not references or not limit:
            return
        if len(references) > limit:
            raise EngineError(f"{where}: {len(references)} reference images; engine "
                              f"{self.spec.name!r} takes at most {limit}")
        for index, image in enumerate(references):
            if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or \
                    image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
                raise EngineError(f"{where}: reference_images[{index}] must be uint8 RGB of "
                                  f"shape (H, W, 3), got {getattr(image, 'dtype', type(image))} "
                                  f"{getattr(image, 'shape', '')}")

    def check_conditioning(self, request: GenerationRequest) -> None:
        """"latent" and "svi" conditioning need an engine that builds its own conditioning
        latents (spec.chain_modes); every engine takes "pixels"."""
        wanted = request.conditioning
        if wanted == "pixels":
            return
        if wanted not in ("latent", "svi"):
            raise EngineError(f"segment {request.shot_id}_{request.segment_index}: unknown "
                              f"conditioning {wanted!r}; expected pixels, latent or svi")
        if wanted not in self.spec.chain_modes:
            from ..registry import engines_where  # the registry imports the families

            able = engines_where(lambda spec: wanted in spec.chain_modes)
            raise EngineError(
                f"engine {self.spec.name!r} cannot chain with conditioning {wanted!r} (segment "
                f"{request.shot_id}_{request.segment_index}); its chain modes are "
                f"{', '.join(sorted(self.spec.chain_modes))}: set the shot's `chain: {{mode: "
                f"...}}` to one of them, or use {' / '.join(able)}")

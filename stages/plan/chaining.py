"""Chaining strategies: what each `chain:` mode means in frames and in generation inputs.

Shared by validation (does the engine allow the mode, does the lead fit a segment) and the
planner (segment lengths, what each job hands over). See README "Long shots".
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from engine.base import EngineSpec
from stages.render.overlap_join import PRESETS, OverlapParams
from stages.storyboard.schema import Chain


@dataclass(frozen=True)
class ChainSpec:
    """How a chained segment continues its upstream (storyboard `chain:`), as the engine and
    the shot assembly need it."""

    mode: str = "last_frame"  # last_frame | overlap | latent | svi
    # Frames at the start of the segment that are not new: they repeat (last_frame, latent),
    # re-render (svi: the anchor, then the upstream's last 4 * motion_latents frames) or
    # overlap (overlap) the upstream's tail.
    lead: int = 0
    # Of the lead frames, how many are joined with the upstream's tail (overlap mode); the rest
    # are dropped. The join happens after generation: it is in the shot's key, not the segment's.
    blend: int = field(default=0, metadata={"key": False})
    conditioning: str = "pixels"  # GenerationRequest.conditioning
    context: int = 0  # overlap: upstream frames given as context (GenerationRequest.context_frames)
    motion_latents: int = 0  # latent / svi: upstream latent frames handed over
    keep_latents: int = 0  # latent frames this segment keeps for its downstream
    color_match: str = "none"  # anchor | previous | none: applied to this segment's frames
    color_strength: float = 1.0

    def key_dict(self) -> dict[str, Any]:
        """Every field that changes the segment's pixels (all but those marked otherwise)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("key", True)}


def overlap_params(chain: Chain) -> OverlapParams:
    """The preset's parameters with the storyboard's own values on top."""
    base = PRESETS[chain.preset or "standard"]
    given = {name: getattr(chain, name) for name in
             ("overlap", "blend", "motion_weight", "mask_sigma", "step_gain")
             if getattr(chain, name) is not None}
    return replace(base, **given)


def chain_lead(chain: Chain, engine: EngineSpec) -> int:
    """Frames a chained segment shares with its upstream in this mode (see ChainSpec.lead)."""
    if chain.mode == "overlap":
        return overlap_params(chain).overlap
    if chain.mode == "svi":
        # The anchor frame, then the frames the motion latents re-render (the VAE packs
        # `frame_rule.step` frames into one latent frame).
        return 1 + engine.frame_rule.step * chain.motion_latents
    return 1


def chain_spec(chain: Chain, lead: int, within_shot: bool) -> ChainSpec:
    """What one segment does with its upstream. The shot's first segment starts like any
    image-to-video call (from the start image or the shot it chains from); later ones use the
    shot's chain mode. Colour matching applies to the later ones only: the first segment is
    where the anchor comes from."""
    # Latent frames kept for the next segment: svi hands over motion_latents of them (at
    # least one is kept, so svi with motion_latents 0 still has latents to look at), latent one.
    keep = {"latent": 1, "svi": max(1, chain.motion_latents)}.get(chain.mode, 0)
    if not within_shot:
        return ChainSpec(mode=chain.mode, lead=lead, keep_latents=keep)
    spec = ChainSpec(mode=chain.mode, lead=lead, keep_latents=keep,
                     color_match=chain.color_match, color_strength=chain.color_strength)
    if chain.mode == "overlap":
        return replace(spec, blend=lead, context=lead)
    if chain.mode == "latent":
        return replace(spec, conditioning="latent", motion_latents=1)
    if chain.mode == "svi":
        return replace(spec, conditioning="svi", motion_latents=chain.motion_latents)
    return spec

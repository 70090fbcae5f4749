"""What each diffusers engine can do, as plain data (no torch import).

Validation and planning read these before anything loads: frame rule, resolution multiple,
default fps and size, longest segment, modes, which storyboard keys the engine honours and how it
realises camera moves. The engine classes live in `engine.wan`, `engine.hunyuan`, `engine.ltx`,
`engine.cogvideox` and `engine.svd` and are imported only when a render constructs one.
"""

from __future__ import annotations

from .base import EngineSpec, FrameRule

# Keys every diffusers engine honours; families add theirs.
_COMMON = frozenset({"steps", "seed", "negative", "loras"})
_WAN = _COMMON | {"cfg", "flow_shift", "sampler"}
_TWO_EXPERTS = _WAN | {"cfg_2", "boundary"}
_WAN_RULE = FrameRule(step=4, offset=1, minimum=5)
# Wan I2V builds its own conditioning latents (engine.wan), so segments can also hand over
# latents ("latent") or anchor + motion latents ("svi"), not only pixels.
_LATENT_CHAINS = frozenset({"last_frame", "overlap", "latent", "svi"})

DIFFUSERS_SPECS: dict[str, tuple[EngineSpec, str]] = {
    "wan21_t2v": (EngineSpec(
        name="wan21_t2v", frame_rule=_WAN_RULE, default_fps=16, default_resolution=(832, 480),
        max_frames=81, modes=frozenset({"t2v"}), honours=_WAN), "engine.wan:Wan21T2V"),
    "wan21_i2v": (EngineSpec(
        name="wan21_i2v", frame_rule=_WAN_RULE, default_fps=16, default_resolution=(832, 480),
        max_frames=81, modes=frozenset({"i2v", "flf2v"}), honours=_WAN,
        chain_modes=_LATENT_CHAINS), "engine.wan:Wan21I2V"),
    "wan22_t2v_a14b": (EngineSpec(
        name="wan22_t2v_a14b", frame_rule=_WAN_RULE, default_fps=16,
        default_resolution=(832, 480), max_frames=81, modes=frozenset({"t2v"}),
        honours=_TWO_EXPERTS, experts=2), "engine.wan:Wan22T2V"),
    "wan22_i2v_a14b": (EngineSpec(
        name="wan22_i2v_a14b", frame_rule=_WAN_RULE, default_fps=16,
        default_resolution=(832, 480), max_frames=81, modes=frozenset({"i2v", "flf2v"}),
        honours=_TWO_EXPERTS, experts=2, chain_modes=_LATENT_CHAINS), "engine.wan:Wan22I2V"),
    "wan22_ti2v_5b": (EngineSpec(
        name="wan22_ti2v_5b", frame_rule=_WAN_RULE, resolution_multiple=32, default_fps=24,
        default_resolution=(1280, 704), max_frames=121, modes=frozenset({"t2v", "i2v"}),
        honours=_WAN), "engine.wan:Wan22TI2V"),
    "wan_vace": (EngineSpec(
        name="wan_vace", frame_rule=_WAN_RULE, default_fps=16, default_resolution=(832, 480),
        max_frames=81, modes=frozenset({"t2v", "i2v", "flf2v"}), honours=_WAN,
        camera="guide", context_frames=True), "engine.wan:WanVace"),
    "wan_v2v": (EngineSpec(
        name="wan_v2v", frame_rule=_WAN_RULE, default_fps=16, default_resolution=(832, 480),
        max_frames=81, modes=frozenset({"v2v"}), honours=_WAN | {"source_video", "denoise"},
        requires=frozenset({"source_video"}), camera="guide"), "engine.wan:WanV2V"),
    "wan_animate": (EngineSpec(
        name="wan_animate", frame_rule=_WAN_RULE, default_fps=30, default_resolution=(832, 480),
        max_frames=77, modes=frozenset({"animate"}),
        honours=_COMMON | {"cfg", "driving_video"},
        requires=frozenset({"driving_video", "image"})), "engine.wan:WanAnimate"),
    "hunyuan_t2v": (EngineSpec(
        name="hunyuan_t2v", frame_rule=_WAN_RULE, default_fps=24, default_resolution=(848, 480),
        max_frames=129, modes=frozenset({"t2v"}),
        honours=_COMMON | {"cfg", "embedded_guidance", "flow_shift"}),
        "engine.hunyuan:HunyuanT2V"),
    "hunyuan_i2v": (EngineSpec(
        name="hunyuan_i2v", frame_rule=_WAN_RULE, default_fps=24, default_resolution=(848, 480),
        max_frames=129, modes=frozenset({"i2v"}),
        honours=_COMMON | {"cfg", "embedded_guidance", "flow_shift"}),
        "engine.hunyuan:HunyuanI2V"),
    "ltx": (EngineSpec(
        name="ltx", frame_rule=FrameRule(step=8, offset=1, minimum=9), resolution_multiple=32,
        default_fps=24, default_resolution=(704, 480), max_frames=161,
        modes=frozenset({"t2v", "i2v"}), honours=_COMMON | {"cfg"}), "engine.ltx:LTX"),
    "cogvideox": (EngineSpec(
        name="cogvideox", frame_rule=FrameRule(step=8, offset=1, minimum=9), default_fps=8,
        default_resolution=(720, 480), max_frames=49, modes=frozenset({"t2v", "i2v"}),
        honours=_COMMON | {"cfg"}), "engine.cogvideox:CogVideoX"),
    "svd": (EngineSpec(
        name="svd", frame_rule=FrameRule(step=1, offset=0, minimum=2), resolution_multiple=64,
        default_fps=7, default_resolution=(1024, 576), max_frames=25,
        modes=frozenset({"i2v"}), honours=frozenset({"steps", "seed", "cfg"})),
        "engine.svd:SVD"),
}

# The storyboard's generation keys that some engine honours (the schema accepts all of them).
GENERATION_KEYS = frozenset(
    {"steps", "cfg", "cfg_2", "flow_shift", "boundary", "loras", "source_video", "denoise",
     "driving_video", "embedded_guidance", "sampler"})

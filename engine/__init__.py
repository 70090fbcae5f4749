"""Video generation backends behind one small interface (see engine.base).

    base.py       the interface: Engine, EngineSpec, GenerationRequest, errors
    registry.py   name -> (spec, factory); builtin.py registers the engines this project ships
    preview/      the embedded CPU animatic engine (no weights)
    diffusers/    the diffusers engines: loading, model pool, acceleration, multi-GPU, and
                  families/ (Wan, HunyuanVideo, LTX, CogVideoX, SVD; specs beside classes)
    geometry.py, images.py, camera_prompt.py   camera homographies, image loading and fitting,
                  camera moves as prompt words (used by the engines and by stages/)

Importing this package loads numpy, OpenCV and Pillow only: no torch, no prefect, no hydra.
"""

from .base import (
    CameraState,
    Engine,
    EngineError,
    EngineLoadError,
    EngineSpec,
    FrameRule,
    GenerationRequest,
    LoraRef,
    ProgressFn,
    is_out_of_memory,
)
from .geometry import camera_homography, relative_homography, warp_frame
from .images import ImageLoadError, load_rgb
from .preview import PREVIEW_SPEC, PreviewEngine
from .registry import (
    UnknownEngineError,
    available_engines,
    engine_spec,
    get_engine,
    register,
)
from .builtin import BUILTIN_ENGINES  # registers them; after .registry, whose table it fills

__all__ = [
    "BUILTIN_ENGINES",
    "CameraState",
    "Engine",
    "EngineError",
    "EngineLoadError",
    "EngineSpec",
    "FrameRule",
    "GenerationRequest",
    "ImageLoadError",
    "LoraRef",
    "PREVIEW_SPEC",
    "PreviewEngine",
    "ProgressFn",
    "UnknownEngineError",
    "available_engines",
    "camera_homography",
    "engine_spec",
    "get_engine",
    "is_out_of_memory",
    "load_rgb",
    "register",
    "relative_homography",
    "warp_frame",
]

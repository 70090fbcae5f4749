"""Video generation backends behind one small interface (see engine.base).

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

__all__ = [
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

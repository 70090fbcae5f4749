"""IP-Adapter for the image engines: cast references as image prompts for generated keyframes.

`engine.options.ip_adapter` (conf/engine/sdxl.yaml) names local files, checked before anything
loads; nothing is downloaded:

    ip_adapter:
      path: /models/IP-Adapter/sdxl_models/ip-adapter_sdxl.safetensors   # or the folder, with
      weight_name: null        # the file's name in it (h94/IP-Adapter's layout)
      image_encoder: null      # a CLIPVisionModelWithProjection folder; null: image_encoder/
                               # beside the weight file (h94/IP-Adapter's sdxl_models/image_encoder)
      scale: 0.6               # how strongly the references steer the image (0..1.5)

FLUX takes the XLabs format (XLabs-AI/flux-ip-adapter's ip_adapter.safetensors, with the CLIP
ViT-L/14 vision model it was trained on as image_encoder); diffusers' loaders read each family's
keys (IPAdapterMixin for SDXL, FluxIPAdapterMixin for FLUX), the call is the same.

The adapter loads once with the pipeline (DiffusersEngine.prepare_pipeline) and stays resident in
the model pool. A request with references passes them all as one image prompt (their embeddings
are averaged by the adapter's attention, one set of image tokens each); a request without them
runs the adapter at scale 0 on a black image, which leaves the text-only result as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..base import EngineConfigError

KEYS = ("path", "weight_name", "subfolder", "image_encoder", "scale")


@dataclass(frozen=True)
class IPAdapterOption:
    folder: Path          # what load_ip_adapter reads (with weight_name)
    weight_name: str
    image_encoder: Path   # a CLIPVisionModelWithProjection save_pretrained folder
    scale: float

    @property
    def file(self) -> Path:
        return self.folder / self.weight_name

    def identity(self) -> dict[str, Any]:
        """What changes pixels: the adapter file (name and size, no path) and the scale."""
        return {"weights": self.weight_name, "bytes": self.file.stat().st_size,
                "encoder_bytes": sum(f.stat().st_size for f in self.image_encoder.rglob("*")
                                     if f.suffix in (".safetensors", ".bin")),
                "scale": self.scale}


def _download(engine: str, key: str) -> tuple[str, str]:
    """(how to get the adapter and set path, which encoder) for an engine's messages."""
    if engine.startswith("flux"):
        return (f"`hf download XLabs-AI/flux-ip-adapter ip_adapter.safetensors --local-dir "
                f"/models/flux-ip-adapter` and {key}.path=/models/flux-ip-adapter/"
                f"ip_adapter.safetensors",
                "`hf download openai/clip-vit-large-patch14 --local-dir "
                "/models/clip-vit-large-patch14`")
    return (f"`hf download h94/IP-Adapter --include 'sdxl_models/*' --local-dir "
            f"/models/IP-Adapter` and {key}.path=/models/IP-Adapter/sdxl_models/"
            f"ip-adapter_sdxl.safetensors", "h94/IP-Adapter's sdxl_models/image_encoder")


def parse(value: Any, engine: str) -> IPAdapterOption | None:
    """engine.options.ip_adapter checked against the disk; None when unset."""
    if value is None:
        return None
    key = "engine.options.ip_adapter"
    if not isinstance(value, Mapping):
        raise EngineConfigError(f"{key}={value!r} for engine {engine!r}: expected a mapping "
                                f"{{path: ..., weight_name: ..., image_encoder: ..., scale: 0.6}}")
    unknown = sorted(set(value) - set(KEYS))
    if unknown:
        raise EngineConfigError(f"{key}.{unknown[0]}: unknown key for engine {engine!r} "
                                f"(keys: {', '.join(KEYS)})")
    if value.get("path") in (None, ""):
        raise EngineConfigError(
            f"{key}.path is not set for engine {engine!r}: give the IP-Adapter weights, e.g. "
            f"{_download(engine, key)[0]}, or remove {key}")
    path = Path(str(value["path"])).expanduser()
    if value.get("subfolder"):
        path = path / str(value["subfolder"])
    weight_name = value.get("weight_name")
    if path.is_file():
        folder, weight_name = path.parent, path.name
    elif path.is_dir():
        if not weight_name:
            found = sorted(p.name for p in path.glob("*.safetensors")) + \
                sorted(p.name for p in path.glob("*.bin"))
            raise EngineConfigError(
                f"{key}.path={str(path)!r} is a folder: set {key}.weight_name to the adapter "
                f"file in it ({', '.join(found) or 'none found'})")
        folder = path
        if not (folder / str(weight_name)).is_file():
            raise EngineConfigError(f"{key}.weight_name={weight_name!r}: no such file in "
                                    f"{folder}; download it or fix the name")
    else:
        raise EngineConfigError(f"{key}.path={str(path)!r}: no such file or folder; download "
                                f"the IP-Adapter weights there or fix the path")
    encoder = value.get("image_encoder")
    encoder_path = Path(str(encoder)).expanduser() if encoder else folder / "image_encoder"
    if not (encoder_path / "config.json").is_file():
        raise EngineConfigError(
            f"{key}.image_encoder={str(encoder_path)!r}: no CLIP image encoder there (a "
            f"folder with config.json and weights, e.g. {_download(engine, key)[1]}); set "
            f"{key}.image_encoder to it")
    scale = value.get("scale", 0.6)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 <= scale <= 2:
        raise EngineConfigError(f"{key}.scale={scale!r} for engine {engine!r}: expected a "
                                f"number between 0 and 2 (0.5-0.8 is usual)")
    return IPAdapterOption(folder, str(weight_name), encoder_path, float(scale))


def load(pipe, option: IPAdapterOption) -> None:
    """The image encoder (from its own folder) and the adapter weights into `pipe`."""
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    if getattr(pipe, "image_encoder", None) is None:
        encoder = CLIPVisionModelWithProjection.from_pretrained(
            str(option.image_encoder), local_files_only=True, dtype=pipe.dtype)
        pipe.register_modules(image_encoder=encoder)
    if getattr(pipe, "feature_extractor", None) is None:
        size = pipe.image_encoder.config.image_size
        pipe.register_modules(feature_extractor=CLIPImageProcessor(size=size, crop_size=size))
    pipe.load_ip_adapter(str(option.folder), subfolder="", weight_name=option.weight_name,
                         image_encoder_folder=None, local_files_only=True)


def call_kwargs(pipe, option: IPAdapterOption | None, references) -> dict[str, Any]:
    """ip_adapter_image for one call, with the adapter's scale set for it."""
    if option is None:
        return {}
    from .pipeline_io import pil
    import numpy as np

    if references:
        pipe.set_ip_adapter_scale(option.scale)
        # One adapter, several images: a nested list (the pipeline's per-adapter list).
        return {"ip_adapter_image": [[pil(r) for r in references]]}
    pipe.set_ip_adapter_scale(0.0)
    size = pipe.image_encoder.config.image_size
    return {"ip_adapter_image": [[pil(np.zeros((size, size, 3), np.uint8))]]}

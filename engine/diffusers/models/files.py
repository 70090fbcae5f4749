"""Single checkpoint files (ComfyUI / original-layout safetensors, fp8 "scaled", GGUF) as
replacements for the components of a diffusers folder: `engine.options.files`.

Why this module exists: users hold ComfyUI's single files (`wan2.2_i2v_high_noise_14B_fp8_scaled
.safetensors`, `wan_2.1_vae.safetensors`, `umt5_xxl_fp8_e4m3fn_scaled.safetensors`, city96's
GGUF quantizations), not diffusers folders. A single file has weights only: no tokenizer, no
scheduler, no configs, and nothing may be downloaded at run time. So `engine.model` stays the
diffusers folder (the *base*: configs, tokenizer, scheduler, and the weights of every component
not replaced; a configs-only download is enough when files replace the big ones), and
`engine.options.files` maps component names (transformer, transformer_2, vae, text_encoder,
image_encoder) to files. In three steps (the headers are read by
engine.diffusers.models.headers):

1. `inspect_files` (engine construction; reads headers, never weights): GGUF by its magic bytes,
   safetensors by its JSON header (a header that promises more bytes than the file has is a
   truncated download). Tensor names say which model it is (a Wan transformer in the original
   or diffusers layout, a Wan VAE, a UMT5 encoder, ... or an SDXL UNet, a LoRA), and the shapes
   are checked against the base's config for that component, after diffusers' own single-file
   key conversion run on meta tensors. A file of the wrong model, size or format is an
   EngineConfigError (exit 2) naming the key, the file and what was found, before any load.
2. `loading.load_components` (inside the model pool's load): original-layout names are
   converted by diffusers' single-file converters (the mapping functions `from_single_file`
   uses), fp8 weights are multiplied by their scales (ComfyUI's `scale_weight` / `weight_scale`, per
   tensor or per channel), each tensor is cast as `from_pretrained` casts it (modules the class
   keeps in fp32 stay fp32), and the component is built from the base's config offline. GGUF
   transformers go through `from_single_file` with diffusers' GGUF quantizer and stay
   quantized. The modules reach `from_pretrained` as component overrides.
3. `ModelFile.identity`: file name, size and a hash of the first and last MiB, for content keys
   (no absolute paths; cheap on 14B files; any re-download or different fine-tune changes it).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..options import EngineConfigError
from .headers import (
    _DROP_NAMES,
    _DROP_SUFFIXES,
    _FP8,
    _FP8_FORMATS,
    _SCALE_SUFFIXES,
    _T5_GGUF_NAMES,
    EXPECTED_FAMILY,
    ModelFile,
    _Header,
    _Unreadable,
    describe_header,
    file_fingerprint,
    identify,
    quantization_of,
    read_header,
)

if TYPE_CHECKING:  # pragma: no cover
    from .source import ModelSource

log = logging.getLogger(__name__)


# -- the base's side ----------------------------------------------------------------------------


def _components(base: Path) -> dict[str, tuple[str | None, str | None]]:
    try:
        meta = json.loads((base / "model_index.json").read_text())
    except (OSError, ValueError):
        return {}
    return {k: (v[0], v[1]) for k, v in meta.items()
            if not k.startswith("_") and isinstance(v, list) and len(v) == 2}


def _single_file_loadable(class_name: str) -> bool:
    from diffusers.loaders.single_file_model import SINGLE_FILE_LOADABLE_CLASSES

    return class_name in SINGLE_FILE_LOADABLE_CLASSES


def _model_class(library: str, name: str):
    import importlib

    module = importlib.import_module(library)
    return getattr(module, name, None)


def expected_shapes(library: str, class_name: str, folder: Path) -> tuple[dict[str, tuple], set]:
    """Parameter names and shapes of the base's component, built on the meta device from its
    config (no weights); plus the names tied to another parameter (may be absent in files)."""
    from accelerate import init_empty_weights

    cls = _model_class(library, class_name)
    with init_empty_weights():
        if library == "diffusers":
            model = cls.from_config(cls.load_config(str(folder)))
        else:
            config = cls.config_class.from_pretrained(str(folder))
            model = cls(config)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    tied = getattr(model, "_tied_weights_keys", None) or ()
    return shapes, set(tied.keys() if isinstance(tied, dict) else tied)


def _strip(names: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    if not prefix:
        return {k: v for k, v in names.items() if k not in _DROP_NAMES}
    return {k[len(prefix):]: v for k, v in names.items() if k.startswith(prefix)}


def _weights_only(shapes: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in shapes.items()
            if not k.endswith(_SCALE_SUFFIXES + _DROP_SUFFIXES) and k not in _DROP_NAMES}


def converted_shapes(library: str, class_name: str, layout: str,
                     shapes: Mapping[str, tuple], config: Mapping[str, Any]) -> dict[str, tuple]:
    """The file's names and shapes as the component will see them: diffusers' single-file
    converter for original layouts, run on meta tensors (no weights read)."""
    if layout != "original" or library != "diffusers":
        return dict(shapes)
    import torch
    from diffusers.loaders.single_file_model import SINGLE_FILE_LOADABLE_CLASSES

    convert = SINGLE_FILE_LOADABLE_CLASSES[class_name]["checkpoint_mapping_fn"]
    meta = {k: torch.empty(v, device="meta") for k, v in shapes.items()}
    out = convert(checkpoint=meta, config=dict(config))
    return {k: tuple(v.shape) for k, v in out.items()}


def _t5_name(name: str) -> str:
    for old, new in _T5_GGUF_NAMES:
        name = name.replace(old, new)
    return name


def _fmt(shape: tuple) -> str:
    return "x".join(str(d) for d in shape) or "scalar"


# -- inspection (engine construction) ---------------------------------------------------------


def inspect_files(files: Mapping[str, Any] | None, source: "ModelSource",
                  engine: str) -> dict[str, ModelFile]:
    """Check every `engine.options.files` entry against the base folder; EngineConfigError
    naming the key, the file and what was found when one cannot serve its component."""
    chosen = {k: v for k, v in dict(files or {}).items() if v not in (None, "")}
    components = _components(source.path)
    out: dict[str, ModelFile] = {}
    for component, value in chosen.items():
        out[component] = _inspect_one(component, value, source, components, engine)
    missing = [c for c in missing_weights(source.path) if c not in out]
    if missing:
        folders = ", ".join(missing) + (" folders have" if len(missing) > 1 else " folder has")
        raise EngineConfigError(
            f"engine.model={source.name!r}: its {folders} a config but no weights (a "
            f"configs-only download?); set engine.options.files.{missing[0]}=<a single file "
            f"for it> or download the weights (`python -m flows.models engine={engine}` "
            f"prints the command)")
    return out


def _inspect_one(component: str, value: Any, source: "ModelSource",
                 components: Mapping[str, tuple], engine: str) -> ModelFile:
    key = f"engine.options.files.{component}"
    if not isinstance(value, (str, Path)):
        raise EngineConfigError(f"{key}={value!r}: expected the path of a .safetensors or "
                                f".gguf file")
    library, class_name = components.get(component, (None, None))
    models = [c for c, (lib, cls) in components.items()
              if lib is not None and _needs_weights(source.path / c, cls)]
    if library is None or class_name is None:
        raise EngineConfigError(
            f"{key}: engine.model={source.name!r} ({source.pipeline_class}) has no {component!r} "
            f"component; files can replace {', '.join(models) or 'none of its components'}")
    if not _needs_weights(source.path / component, class_name):
        raise EngineConfigError(f"{key}: {component!r} of engine.model={source.name!r} is a "
                                f"{class_name}, which has no weights to replace; files can "
                                f"replace {', '.join(models)}")
    path = Path(str(value)).expanduser()
    shown = Path(str(value)).name or str(value)
    if not path.is_file():
        what = "a folder, not a file" if path.is_dir() else "no such file"
        raise EngineConfigError(f"{key}={value}: {what}; give the .safetensors or .gguf file "
                                f"of the {component} (a ComfyUI or original checkpoint, or a "
                                f"GGUF quantization)")
    path = path.resolve()
    try:
        header = read_header(path)
    except _Unreadable as exc:
        raise EngineConfigError(f"{key}={shown}: {exc}") from None
    except OSError as exc:
        raise EngineConfigError(f"{key}={shown}: cannot read it ({exc.strerror})") from None
    names = set(header.tensors)
    expected_family = EXPECTED_FAMILY.get(class_name)
    match = identify(names, prefer=expected_family)
    found = describe_header(header, match)
    want = f"the {component} of {source.pipeline_class} ({class_name})"
    if match is not None and match.signature.family == "lora":
        raise EngineConfigError(f"{key}={shown}: {found}; it needs {want}. A LoRA goes in a "
                                f"storyboard's `loras:` list, not in engine.options.files")
    if expected_family is not None and (match is None or match.signature.family != expected_family):
        raise EngineConfigError(
            f"{key}={shown}: {found}, but it needs {want}. Give the file of that model (for "
            f"Wan: diffusion_models/ for transformers, vae/ for the VAE, text_encoders/ for "
            f"umt5) or remove the entry to use engine.model's own {component}")
    prefix = match.prefix if match is not None else ""
    names_kind = match.signature.layout if match is not None else "diffusers"
    if library == "diffusers" and not _single_file_loadable(class_name):
        raise EngineConfigError(
            f"{key}={shown}: diffusers has no single-file loader for {class_name}, the "
            f"{component} of {source.pipeline_class}; use a diffusers folder for it instead")
    if header.format == "safetensors":
        _check_quantization(key, shown, header)
    else:
        _check_gguf(key, shown, header)
    layout, keys = _check_shapes(key, shown, found, header, prefix, names_kind, library,
                                 class_name, source, component)
    size = path.stat().st_size
    return ModelFile(component=component, path=path, format=header.format, layout=layout,
                     quantization=quantization_of(header), prefix=prefix, size=size,
                     digest=file_fingerprint(path, size), library=library,
                     model_class=class_name, keys=keys)


def _check_gguf(key: str, shown: str, header: _Header) -> None:
    if any(n.startswith("comfy.gguf.orig_shape.") for n in header.metadata):
        raise EngineConfigError(f"{key}={shown}: a GGUF file with reshaped tensors "
                                f"(comfy.gguf.orig_shape, an SD1/SDXL-style conversion), "
                                f"which diffusers' GGUF loader cannot read")
    from diffusers.quantizers.gguf.utils import SUPPORTED_GGUF_QUANT_TYPES

    readable = {t.name for t in SUPPORTED_GGUF_QUANT_TYPES} | {"F32", "F16"}
    odd = sorted({t for _shape, t in header.tensors.values()} - readable)
    if odd:
        raise EngineConfigError(f"{key}={shown}: GGUF quantization {', '.join(odd)}, which "
                                f"diffusers' GGUF loader cannot read (it reads "
                                f"{', '.join(sorted(readable))}); use another quantization "
                                f"of the model")


def _check_quantization(key: str, shown: str, header: _Header) -> None:
    raw = header.metadata.get("_quantization_metadata")
    if raw:
        try:
            layers = json.loads(raw).get("layers", {})
        except (ValueError, AttributeError):
            layers = {}
        formats = {str(v.get("format") if isinstance(v, dict) else v) for v in layers.values()}
        other = sorted(f for f in formats if f not in _FP8_FORMATS)
        if other:
            raise EngineConfigError(
                f"{key}={shown}: ComfyUI quantization {', '.join(other)}, which this engine "
                f"cannot read; use an fp16/bf16, fp8 (\"fp8_scaled\") or GGUF release of the model")
    dtypes = {dtype for _shape, dtype in header.tensors.values()}
    odd = sorted(d for d in dtypes if d not in ("F32", "F16", "BF16", *_FP8, "U8", "I64", "I32"))
    if odd:
        raise EngineConfigError(f"{key}={shown}: tensors of type {', '.join(odd)}, which this "
                                f"engine cannot read; use an fp16/bf16, fp8 or GGUF release")
    big_u8 = [n for n, (shape, d) in header.tensors.items()
              if d == "U8" and n.endswith(".weight") and len(shape) == 2]
    if big_u8:
        raise EngineConfigError(f"{key}={shown}: packed 4-bit weights (uint8 {big_u8[0]}, "
                                f"nvfp4/int4 style), which this engine cannot read; use an "
                                f"fp16/bf16, fp8 or GGUF release")


def _check_shapes(key, shown, found, header, prefix, names_kind, library, class_name, source,
                  component) -> tuple[str, frozenset]:
    """The file's layout ("diffusers" / "transformers": its names are the component's own;
    "llama.cpp": T5 names mapped; "original": diffusers' single-file converter maps them) and
    the component's parameter names, or EngineConfigError when the file does not fit."""
    folder = source.path / component
    try:
        expected, tied = expected_shapes(library, class_name, folder)
    except Exception as exc:  # noqa: BLE001 - a config the class cannot read
        raise EngineConfigError(f"{key}: cannot read the {component} config of engine.model="
                                f"{source.name!r} ({type(exc).__name__}: {exc})") from None
    mine = _weights_only(_strip({k: v[0] for k, v in header.tensors.items()}, prefix))
    own = "diffusers" if library == "diffusers" else "transformers"
    if names_kind == "llama.cpp":
        own, mine = "llama.cpp", {_t5_name(k): v for k, v in mine.items()}
    layout, got = own, mine
    missing, wrong = _misfit(expected, tied, got)
    if (missing or wrong) and library == "diffusers":
        try:  # not the component's own names: diffusers' converter for original layouts
            config = json.loads((folder / "config.json").read_text())
            converted = converted_shapes(library, class_name, "original", mine, config)
        except Exception:  # noqa: BLE001 - the converter does not fit these names
            converted = None
        if converted is not None:
            c_missing, c_wrong = _misfit(expected, tied, converted)
            if names_kind == "original" or len(c_missing) + len(c_wrong) < \
                    len(missing) + len(wrong):
                layout, got, missing, wrong = "original", converted, c_missing, c_wrong
    if not missing and not wrong:
        extra = [k for k in got if k not in expected]
        if extra:
            log.warning("%s=%s: %d tensors the %s does not use are ignored (e.g. %s)",
                        key, shown, len(extra), class_name, extra[0])
        return layout, frozenset(expected)
    details = []
    if wrong:
        k = wrong[0]
        more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        details.append(f"{k} is {_fmt(got[k])} in the file but {_fmt(expected[k])} in the "
                       f"config{more}")
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        details.append(f"{len(missing)} of the {len(expected)} tensors it needs are missing "
                       f"(e.g. {missing[0]}{more})")
    raise EngineConfigError(
        f"{key}={shown}: {found}, which does not fit the {component} config of engine.model="
        f"{source.name!r} ({class_name}): {'; '.join(details)}. The file is another size or "
        f"variant of the model than the folder (e.g. 14B weights with a 1.3B folder): point "
        f"engine.model at the matching diffusers folder, or use the matching file")


def _misfit(expected: Mapping[str, tuple], tied: set, got: Mapping[str, tuple]
            ) -> tuple[list[str], list[str]]:
    """(names the component needs that `got` lacks, names whose shapes differ)."""
    missing = sorted(k for k in expected if k not in got and k not in tied)
    # The weight matrices first: "to_q is 5120x5120 in the file but 1536x1536" says the most.
    wrong = sorted((k for k in expected if k in got and tuple(got[k]) != tuple(expected[k])),
                   key=lambda k: (-min(len(expected[k]), 2), k))
    return missing, wrong


# -- weights in a base folder -------------------------------------------------------------------

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf")


_NOT_MODELS = ("Tokenizer", "TokenizersBackend", "Processor", "Scheduler", "FeatureExtractor")


def _needs_weights(folder: Path, class_name: str | None) -> bool:
    """A model component (a config.json, a model class), not a scheduler, tokenizer or
    processor."""
    return bool(class_name) and not any(word in class_name for word in _NOT_MODELS) and \
        (folder / "config.json").is_file()


def has_weights(folder: Path) -> bool:
    """The component folder holds its weights: every shard its index names, or a weight file."""
    if not folder.is_dir():
        return False
    for index in folder.glob("*.index.json"):
        try:
            shards = set(json.loads(index.read_text()).get("weight_map", {}).values())
        except (OSError, ValueError, AttributeError):
            return False
        return bool(shards) and all((folder / s).is_file() for s in shards)
    return any(p.suffix in _WEIGHT_SUFFIXES and p.is_file() for p in folder.iterdir())


def missing_weights(base: Path) -> list[str]:
    """Model components of a diffusers folder whose weights are not on disk."""
    return [c for c, (lib, cls) in _components(base).items()
            if lib is not None and _needs_weights(base / c, cls) and not has_weights(base / c)]

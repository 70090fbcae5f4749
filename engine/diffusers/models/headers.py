"""What a single checkpoint file holds, from its header only (never its weights): safetensors
JSON headers and GGUF metadata, which model the tensor names belong to (SIGNATURES), the
quantization, and `ModelFile`, one inspected `engine.options.files` entry (how those files are
checked and loaded: engine.diffusers.models.files)."""

from __future__ import annotations

import hashlib
import json
import logging
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"
_MAX_HEADER = 200 * 2**20  # a safetensors header larger than this is not one
_FINGERPRINT_SPAN = 2**20

# Markers and extra tensors of ComfyUI's fp8 layouts; dropped on load (scales are applied).
_SCALE_SUFFIXES = (".scale_weight", ".weight_scale")
_DROP_SUFFIXES = (".scale_input", ".input_scale", ".comfy_quant")
_DROP_NAMES = ("scaled_fp8", "spiece_model")
_FP8 = ("F8_E4M3", "F8_E5M2")
_FP8_FORMATS = ("float8_e4m3fn", "float8_e5m2")

# llama.cpp / city96 names of a T5 encoder in GGUF -> transformers names.
_T5_GGUF_NAMES = (
    ("enc.", "encoder."), (".blk.", ".block."), ("token_embd", "shared"),
    ("output_norm", "final_layer_norm"), ("attn_q", "layer.0.SelfAttention.q"),
    ("attn_k", "layer.0.SelfAttention.k"), ("attn_v", "layer.0.SelfAttention.v"),
    ("attn_o", "layer.0.SelfAttention.o"), ("attn_norm", "layer.0.layer_norm"),
    ("attn_rel_b", "layer.0.SelfAttention.relative_attention_bias"),
    ("ffn_up", "layer.1.DenseReluDense.wi_1"), ("ffn_down", "layer.1.DenseReluDense.wo"),
    ("ffn_gate", "layer.1.DenseReluDense.wi_0"), ("ffn_norm", "layer.1.layer_norm"),
)


@dataclass(frozen=True)
class _Signature:
    family: str
    layout: str           # diffusers | original | transformers | llama.cpp
    anchors: tuple[str, ...]
    label: str


# What a file's tensor names look like, most specific first. `anchors` must all be present
# under one common prefix (model.diffusion_model., first_stage_model., ... or none).
SIGNATURES: tuple[_Signature, ...] = (
    _Signature("lora", "lora", ("lora_A.weight",), "a LoRA (adapter weights, not a model)"),
    _Signature("lora", "lora", ("lora_down.weight",), "a LoRA (adapter weights, not a model)"),
    _Signature("wan_transformer", "original", ("blocks.0.self_attn.q.weight", "head.modulation"),
               "a Wan transformer in the original Wan / ComfyUI layout"),
    _Signature("wan_transformer", "diffusers",
               ("blocks.0.attn1.to_q.weight", "condition_embedder.time_proj.weight"),
               "a Wan transformer in the diffusers layout"),
    _Signature("wan_vae", "original", ("decoder.middle.0.residual.0.gamma",),
               "a Wan VAE in the original layout"),
    _Signature("wan_vae", "diffusers", ("decoder.mid_block.resnets.0.norm1.gamma",),
               "a Wan VAE in the diffusers layout"),
    _Signature("t5", "transformers", ("encoder.block.0.layer.0.SelfAttention.q.weight",),
               "a T5 / UMT5 text encoder (transformers layout)"),
    _Signature("t5", "llama.cpp", ("enc.blk.0.attn_q.weight",),
               "a T5 / UMT5 text encoder (llama.cpp GGUF names)"),
    _Signature("wan_t5", "original", ("blocks.0.attn.q.weight", "token_embedding.weight"),
               "Wan's original T5 checkpoint (models_t5_umt5-xxl-enc layout)"),
    _Signature("clip_vision", "transformers",
               ("vision_model.encoder.layers.0.self_attn.q_proj.weight",),
               "a CLIP vision encoder (transformers layout)"),
    _Signature("open_clip", "original", ("visual.transformer.resblocks.0.attn.in_proj_weight",),
               "an open_clip vision encoder (Wan's original models_clip_open-clip layout)"),
    _Signature("clip_text", "transformers",
               ("text_model.encoder.layers.0.self_attn.q_proj.weight",),
               "a CLIP text encoder"),
    _Signature("sd_unet", "original", ("input_blocks.0.0.weight", "out.2.weight"),
               "an SD 1.x / SDXL UNet"),
    _Signature("unet", "diffusers", ("conv_in.weight", "time_embedding.linear_1.weight",
                                     "down_blocks.0.resnets.0.conv1.weight"),
               "a diffusers UNet"),
    _Signature("flux", "original", ("double_blocks.0.img_attn.qkv.weight",),
               "a Flux transformer"),
    _Signature("hunyuan_video", "original", ("double_blocks.0.img_attn_qkv.weight",),
               "a HunyuanVideo transformer (original layout)"),
    _Signature("ltx", "diffusers", ("transformer_blocks.0.attn1.to_q.weight",
                                    "adaln_single.emb.timestep_embedder.linear_1.weight"),
               "an LTX-Video transformer"),
    _Signature("sd3", "original", ("joint_blocks.0.x_block.attn.qkv.weight",),
               "an SD3 transformer"),
    _Signature("sd_vae", "original", ("decoder.mid.block_1.norm1.weight",),
               "an SD / SDXL / Flux VAE (original layout)"),
    _Signature("sd_vae", "diffusers", ("decoder.mid_block.resnets.0.norm1.weight",
                                       "decoder.conv_in.weight"),
               "a diffusers AutoencoderKL"),
)

# The base's component class -> the family its file must have (others: shape check only).
EXPECTED_FAMILY = {
    "WanTransformer3DModel": "wan_transformer",
    "WanVACETransformer3DModel": "wan_transformer",
    "WanAnimateTransformer3DModel": "wan_transformer",
    "AutoencoderKLWan": "wan_vae",
    "UMT5EncoderModel": "t5",
    "T5EncoderModel": "t5",
    "CLIPVisionModel": "clip_vision",
    "CLIPVisionModelWithProjection": "clip_vision",
}


@dataclass(frozen=True)
class ModelFile:
    """One `engine.options.files` entry, inspected (headers only)."""

    component: str
    path: Path
    format: str          # safetensors | gguf
    layout: str          # diffusers | original | transformers | llama.cpp
    quantization: str    # e.g. "bf16", "fp8 scaled", "GGUF Q8_0"
    prefix: str          # key prefix stripped on load ("model.diffusion_model.", ...)
    size: int
    digest: str
    library: str         # diffusers | transformers (the base's component library)
    model_class: str     # the base's component class
    # The component's parameter names (a diffusers-layout file loads only these).
    keys: frozenset = field(default=frozenset(), repr=False, compare=False)

    @property
    def key(self) -> str:
        return f"engine.options.files.{self.component}"

    @property
    def identity(self) -> str:
        """For content keys: no folders, only what identifies the bytes."""
        return f"{self.path.name}:{self.size}:{self.digest}"

    def describe(self) -> str:
        return f"{self.path.name} ({self.format}, {self.layout} layout, {self.quantization})"

    def loaded_bytes(self, dtype_bytes: int) -> int:
        """Approximate memory once loaded at `dtype_bytes` per weight (2 for bf16): GGUF stays
        quantized (its file size); fp8 and fp16/fp32 files are cast to the compute dtype."""
        if self.format == "gguf":
            return self.size
        per_weight = {"fp32": 4, "fp16": 2, "bf16": 2}.get(self.quantization, 1)
        return self.size * dtype_bytes // per_weight


# -- reading headers --------------------------------------------------------------------------


@dataclass
class _Header:
    format: str
    tensors: dict[str, tuple[tuple[int, ...], str]]  # name -> (shape, dtype / GGUF type)
    metadata: dict[str, Any]
    gguf_arch: str | None = None


class _Unreadable(Exception):
    """The file is not a model file this engine reads; the message says what it is."""


def file_fingerprint(path: Path, size: int | None = None) -> str:
    """Hash of the size and the first and last MiB: changes with any re-download or re-save,
    costs two small reads on a 14B file."""
    size = path.stat().st_size if size is None else size
    digest = hashlib.sha256(f"{size}\0".encode())
    with open(path, "rb") as fh:
        digest.update(fh.read(_FINGERPRINT_SPAN))
        if size > 2 * _FINGERPRINT_SPAN:
            fh.seek(size - _FINGERPRINT_SPAN)
            digest.update(fh.read(_FINGERPRINT_SPAN))
    return digest.hexdigest()[:16]


def read_header(path: Path) -> _Header:
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(9)
    if head[:4] == GGUF_MAGIC:
        return _read_gguf(path)
    if len(head) < 9:
        raise _Unreadable(f"a {size}-byte file: too short to be a safetensors or GGUF model "
                          f"(an interrupted download?)")
    (length,) = struct.unpack("<Q", head[:8])
    if head[8:9] != b"{" or length > _MAX_HEADER:
        if head[:4] == b"PK\x03\x04" or head[:2] in (b"\x80\x02", b"\x80\x04"):
            raise _Unreadable("a PyTorch pickle checkpoint (.pt/.pth/.ckpt/.bin); pickles can "
                              "run code and are not read here: use the .safetensors or .gguf "
                              "release of the model")
        raise _Unreadable("neither safetensors (no JSON header) nor GGUF (no GGUF magic bytes)")
    if 8 + length > size:
        raise _Unreadable(f"a truncated safetensors file: its header needs {8 + length} bytes, "
                          f"the file has {size} (an interrupted download?)")
    with open(path, "rb") as fh:
        fh.seek(8)
        raw = fh.read(length)
    try:
        header = json.loads(raw)
    except ValueError:
        raise _Unreadable("a damaged safetensors file (its header is not valid JSON)") from None
    if not isinstance(header, dict):
        raise _Unreadable("a damaged safetensors file (its header is not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    tensors: dict[str, tuple[tuple[int, ...], str]] = {}
    end = 0
    try:
        for name, info in header.items():
            tensors[name] = (tuple(int(d) for d in info["shape"]), str(info["dtype"]))
            end = max(end, int(info["data_offsets"][1]))
    except (KeyError, TypeError, ValueError, IndexError):
        raise _Unreadable("a damaged safetensors file (a tensor entry in its header is "
                          "malformed)") from None
    if 8 + length + end > size:
        raise _Unreadable(f"a truncated safetensors file: its tensors need {8 + length + end} "
                          f"bytes, the file has {size} (an interrupted download? download it "
                          f"again)")
    return _Header("safetensors", tensors, metadata if isinstance(metadata, dict) else {})


def _read_gguf(path: Path) -> _Header:
    try:
        import gguf
    except ImportError:  # pragma: no cover - a project dependency
        raise _Unreadable("a GGUF file, but the `gguf` package is not installed "
                          "(pip install 'gguf>=0.10')") from None
    try:
        reader = gguf.GGUFReader(str(path))
        tensors = {}
        for t in reader.tensors:
            shape = tuple(int(d) for d in reversed([int(x) for x in t.shape]))
            _ = t.data.shape  # a truncated file fails here
            tensors[t.name] = (shape, t.tensor_type.name)
    except Exception as exc:  # noqa: BLE001 - the reader raises many kinds on a bad file
        raise _Unreadable(f"a damaged or truncated GGUF file ({type(exc).__name__}: the tensor "
                          f"table does not fit the file; an interrupted download?)") from None
    metadata: dict[str, Any] = {}
    arch = None
    for name, entry in reader.fields.items():
        metadata[name] = None  # names only: values are never shown
        if name == "general.architecture":
            try:
                arch = bytes(entry.parts[entry.data[-1]]).decode("utf-8")
            except (IndexError, UnicodeDecodeError):
                arch = None
    return _Header("gguf", tensors, metadata, gguf_arch=arch)


# -- what a file holds ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Match:
    signature: _Signature
    prefix: str


def identify(names: set[str], prefer: str | None = None) -> _Match | None:
    """The first signature whose anchors are all present under one prefix; signatures of
    family `prefer` first (so an all-in-one checkpoint yields the part the component wants)."""
    ordered = sorted(SIGNATURES, key=lambda s: s.family != prefer)
    for sig in ordered:
        first = sig.anchors[0]
        for name in names:
            if not name.endswith(first):
                continue
            prefix = name[: len(name) - len(first)]
            if prefix and not prefix.endswith("."):
                continue
            if all(prefix + anchor in names for anchor in sig.anchors[1:]):
                return _Match(sig, prefix)
    return None


def describe_header(header: _Header, match: _Match | None) -> str:
    count = len(header.tensors)
    what = f"a {header.format} file with {count:,} tensor{'s' if count != 1 else ''}"
    if header.gguf_arch:
        what += f" (GGUF architecture {header.gguf_arch!r})"
    if match is None:
        names = set(header.tensors)
        sample = ", ".join(sorted(names, key=len)[:2])
        return f"{what} whose names match no model this engine reads (e.g. {sample})"
    example = match.prefix + match.signature.anchors[0].split(".")[0]
    return f"{what} whose names look like {match.signature.label} ({example}...)"


def quantization_of(header: _Header) -> str:
    counts: dict[str, int] = {}
    for _shape, dtype in header.tensors.values():
        counts[dtype] = counts.get(dtype, 0) + 1
    if header.format == "gguf":
        quant = sorted((t for t in counts if t not in ("F32", "F16")),
                       key=lambda t: -counts[t])
        return "GGUF " + ", ".join(quant or ["F16/F32"])
    if any(d in _FP8 for d in counts):
        scaled = any(n.endswith(_SCALE_SUFFIXES) for n in header.tensors)
        return "fp8 scaled" if scaled else "fp8"
    main = max(counts, key=lambda d: counts[d], default="?")
    return {"F32": "fp32", "F16": "fp16", "BF16": "bf16"}.get(main, main.lower())

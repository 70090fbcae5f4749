"""Where an engine's weights come from: a local diffusers folder, or a hub id already downloaded.

Nothing here downloads. A hub id resolves through the local Hugging Face cache only; a folder
must hold the standard `save_pretrained` layout (model_index.json and one folder per component).
The revision that goes into content keys is the hub commit for cached snapshots, otherwise a
fingerprint of the folder's configs and file sizes: cheap (no weight hashing), independent of
where the folder lives, and changed by any re-download or re-save.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_CONFIG_SUFFIXES = (".json", ".txt", ".model")


class ModelNotFound(ValueError):
    """engine.model does not name a usable local folder or cached hub snapshot."""


@dataclass(frozen=True)
class ModelSource:
    path: Path          # the folder from_pretrained reads
    name: str           # what the user wrote, minus machine-specific folders
    revision: str       # commit hash or folder fingerprint
    pipeline_class: str  # model_index.json's _class_name
    components: tuple[str, ...]  # model_index.json's component names

    @functools.cached_property
    def weight_bytes(self) -> int:
        """Bytes of weights on disk: the model pool's estimate of the memory a load takes
        (walked once; every generation asks the pool)."""
        total = 0
        for root, _dirs, files in os.walk(self.path):
            for f in files:
                if f.endswith((".safetensors", ".bin", ".pt", ".pth")):
                    total += (Path(root) / f).stat().st_size
        return total


def _from_hub_cache(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:  # pragma: no cover - huggingface_hub comes with diffusers
        return None
    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError, OSError):
        return None


def fingerprint(folder: Path) -> str:
    """Hash of every file's relative path and size, plus the bytes of small config files."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel.startswith("."):
            continue
        size = path.stat().st_size
        digest.update(f"{rel}\0{size}\0".encode())
        if path.suffix in _CONFIG_SUFFIXES and size < 4_000_000:
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def resolve_model(model: str | os.PathLike | None, engine: str) -> ModelSource:
    """Find `model` on disk; raise ModelNotFound with what to do otherwise."""
    example = f"engine={engine} engine.model=/models/<folder>"
    if model is None or str(model).strip() == "":
        raise ModelNotFound(
            f"engine.model is not set for engine {engine!r}: point it at a diffusers folder "
            f"(save_pretrained layout) or a hub id already in the local cache, e.g. {example}")
    text = str(model)
    folder = Path(text).expanduser()
    revision = None
    if not folder.exists():
        if not _HUB_ID.match(text):
            raise ModelNotFound(f"engine.model={text!r}: no such folder. Give a diffusers "
                                f"folder or a hub id (org/name) that is already downloaded")
        cached = _from_hub_cache(text)
        if cached is None:
            raise ModelNotFound(
                f"engine.model={text!r} is not in the local Hugging Face cache and nothing is "
                f"downloaded at render time; fetch it first (hf download {text}) or point "
                f"engine.model at a folder (hf download {text} --local-dir /models/"
                f"{text.rsplit('/', 1)[-1]})")
        folder, revision = cached, cached.name
        name = text
    elif folder.is_file():
        raise ModelNotFound(
            f"engine.model={text!r} is a single checkpoint file. A pipeline also needs the "
            f"configs, tokenizer and scheduler of a diffusers folder: set engine.model=<that "
            f"folder> (a configs-only download is enough, see `python -m flows.models`) and "
            f"engine.options.files.transformer={text} (likewise transformer_2, vae, "
            f"text_encoder)")
    else:
        name = folder.resolve().name
    index = folder / "model_index.json"
    if not index.is_file():
        raise ModelNotFound(
            f"engine.model={text!r}: {folder} has no model_index.json; expected a diffusers "
            f"pipeline saved with save_pretrained (model_index.json plus one folder per "
            f"component), e.g. the '-Diffusers' repos on the hub")
    try:
        meta = json.loads(index.read_text())
    except (OSError, ValueError) as exc:
        raise ModelNotFound(f"engine.model={text!r}: cannot read {index}: {exc}") from None
    components = tuple(k for k, v in meta.items() if not k.startswith("_") and
                       isinstance(v, list) and v[0] is not None)
    return ModelSource(path=folder, name=name, revision=revision or fingerprint(folder),
                       pipeline_class=str(meta.get("_class_name", "")), components=components)


def dtype_keyword() -> str:
    """The dtype keyword of from_pretrained / from_single_file: diffusers 0.42 renamed
    torch_dtype to dtype."""
    import diffusers

    major, minor = (int(x) for x in diffusers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (0, 42) else "torch_dtype"

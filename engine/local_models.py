"""Local transformers model folders for the helper models (depth, pose): the folder checks, the
per-process model cache and the identity that enters content keys.

Like every model in reelforge, these load from a folder saved with save_pretrained: nothing
downloads, and a missing or wrong folder is an EngineConfigError naming the config key
(`depth.model`, `pose.model`) and what belongs there.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .base import EngineConfigError, EngineLoadError

__all__ = ["model_folder", "model_identity", "cached_model", "clear_models", "load_pretrained",
           "HelperModel"]

_models: dict[tuple[str, str, str], Any] = {}
_lock = threading.Lock()


def model_folder(model: str | os.PathLike | None, key: str, kinds: str) -> Path:
    """The folder config key `key` names, checked to hold a transformers config. `kinds`: what
    belongs there, for the messages (e.g. "Depth Anything / DPT")."""
    if model is None or str(model).strip() == "":
        section, _, field = key.partition(".")
        raise EngineConfigError(f"{key} is not set: give the folder of a local {kinds} model "
                                f"(saved with save_pretrained) in conf/config.yaml "
                                f"`{section}: {{{field}: ...}}`")
    folder = Path(model).expanduser()
    if not folder.is_dir():
        raise EngineConfigError(f"{key}={str(model)!r}: no such folder; give the folder of a "
                                f"local {kinds} model holding config.json and its weights; "
                                "nothing is downloaded")
    if not (folder / "config.json").is_file():
        raise EngineConfigError(f"{key}={str(model)!r}: the folder has no config.json, so it is "
                                f"not a transformers model folder; give a {kinds} model saved "
                                "with save_pretrained")
    return folder


def load_pretrained(folder: Path, key: str, task: str, kinds: str, classes: dict[str, str],
                    device: str) -> tuple[Any, Any]:
    """(image processor, model in eval mode on `device`) from a transformers folder whose
    model_type is one of `classes` (model_type -> transformers class name: an auto mapping such
    as MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES). `task` names it in errors ("depth
    estimation"), `kinds` says what to give instead ("Depth Anything / DPT")."""
    # Imported here: engine/ must import without torch/transformers for the CPU-only paths.
    import torch
    import transformers
    from transformers import AutoConfig, AutoImageProcessor

    shown = f"{key}={str(folder)!r}"
    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise EngineConfigError(f"{shown}: config.json is not a transformers config ({exc}); "
                                f"give a {kinds} folder") from None
    if config.model_type not in classes:
        raise EngineConfigError(f"{shown}: model_type {config.model_type!r} is not a {task} "
                                f"model; expected one of: {', '.join(sorted(classes))}")
    try:
        processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise EngineConfigError(f"{shown}: no image processor config (preprocessor_config.json) "
                                f"in the folder ({exc}); save the processor with the model "
                                "(processor.save_pretrained)") from None
    try:
        net = getattr(transformers, classes[config.model_type]).from_pretrained(
            folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise EngineLoadError(f"{shown}: cannot load the weights: {exc}") from exc
    return processor, net.to(torch.device(device)).eval()


def model_identity(folder: Path, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """What about a model folder changes its output, for content keys: a hash of its config and
    the names and sizes of its weight files (no paths: keys must match across machines).
    `config`: its config.json already read, when the caller needed it too."""
    digest = hashlib.sha256()
    if config is None:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    digest.update(json.dumps(config, sort_keys=True).encode())
    for path in sorted(folder.iterdir()):
        if path.suffix in (".safetensors", ".bin") and path.is_file():
            digest.update(f"{path.name}:{path.stat().st_size}".encode())
    return {"model_type": config.get("model_type"), "sha256": digest.hexdigest()[:16]}


def cached_model(kind: str, folder: Path, device: str, load: Callable[[], Any]) -> Any:
    """`load()`'s result, loaded once per process for (kind, folder, device)."""
    key = (kind, str(folder.resolve()), device)
    with _lock:
        if key not in _models:
            _models[key] = load()
        return _models[key]


def clear_models(kind: str | None = None) -> None:
    """Forget loaded models (of `kind`, or all): tests, and freeing GPU memory between runs."""
    with _lock:
        for key in [k for k in _models if kind is None or k[0] == kind]:
            del _models[key]


@dataclass(frozen=True)
class HelperModel:
    """One kind of helper model (depth, pose, person detector): its config key, the words its
    errors use, and the transformers auto mapping whose model types it accepts. Its folder
    check, cached load and identity are the functions above with these filled in."""

    kind: str  # its name in the model cache
    key: str  # the config key: "depth.model"
    described: str  # what belongs in the folder: "depth estimation (Depth Anything / DPT)"
    task: str  # the mapping's task, for a wrong model type: "depth estimation"
    kinds: str  # what to give instead: "Depth Anything / DPT"
    mapping: str  # in transformers.models.auto.modeling_auto: "MODEL_FOR_..._MAPPING_NAMES"

    def folder(self, model: str | os.PathLike | None) -> Path:
        return model_folder(model, self.key, self.described)

    def load(self, folder: Path, device: str) -> tuple[Any, Any]:
        """(image processor, model), loaded once per process for the folder and device."""
        def load_now() -> tuple[Any, Any]:
            from transformers.models.auto import modeling_auto

            return load_pretrained(folder, self.key, self.task, self.kinds,
                                   getattr(modeling_auto, self.mapping), device)

        return cached_model(self.kind, folder, device, load_now)

    def identity(self, model: str | os.PathLike) -> dict[str, Any]:
        return model_identity(self.folder(model))

    def clear(self) -> None:
        clear_models(self.kind)

"""Reading model weights that users point post stages at (RIFE, Real-ESRGAN-style upscalers).

torch is imported only here and only when a model is actually used, so chains without models
never pay for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping


class ModelFileError(ValueError):
    """A weights file that cannot be used: the message names the file and what is wrong."""


def read_state_dict(path: Path) -> dict[str, Any]:
    """A checkpoint's tensors by name: .safetensors, or a torch pickle (.pkl/.pth/.pt), loaded
    with weights_only (no code from the file runs); nested `params_ema`/`params`/`state_dict`
    wrappers and DataParallel's `module.` prefix are removed."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            data: Any = load_file(str(path))
        else:
            data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any reader error means an unusable file
        # The reader's message can quote the file (a text file read as a pickle shows its
        # bytes); name the file and the kind of failure only.
        raise ModelFileError(f"cannot read model file {path}: not a readable .safetensors file "
                             f"or torch checkpoint ({type(exc).__name__}); weights are loaded "
                             "with weights_only, so a checkpoint holding code cannot load") \
            from None
    for wrapper in ("params_ema", "params", "state_dict", "model"):
        if isinstance(data, Mapping) and isinstance(data.get(wrapper), Mapping):
            data = data[wrapper]
            break
    if not isinstance(data, Mapping) or not data:
        raise ModelFileError(f"model file {path} holds no state dict (got {type(data).__name__})")
    out = {}
    for key, value in data.items():
        if not isinstance(value, torch.Tensor):
            continue
        key = str(key)
        out[key[len("module."):] if key.startswith("module.") else key] = value
    if not out:
        raise ModelFileError(f"model file {path} holds no tensors")
    return out


def load_matching(net: Any, state: Mapping[str, Any], path: Path, what: str) -> None:
    """Load into `net` the tensors of `state` it needs (extra ones, such as training-time
    blocks, are ignored); ModelFileError naming the file when one is missing or mis-shaped."""
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        raise ModelFileError(f"{path}: missing {len(missing)} {what} tensors, e.g. "
                             f"{', '.join(missing[:3])}")
    bad = [k for k in own if tuple(state[k].shape) != tuple(own[k].shape)]
    if bad:
        k = bad[0]
        raise ModelFileError(f"{path}: tensor {k} has shape {tuple(state[k].shape)}, the "
                             f"inferred {what} expects {tuple(own[k].shape)}")
    net.load_state_dict({k: state[k] for k in own})


def pick_device(device: str):
    """torch.device for "auto" (cuda when available), "cpu", "cuda", "cuda:N"."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)

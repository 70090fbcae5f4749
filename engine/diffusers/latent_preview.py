"""Live previews while a segment samples: the current latent's middle frame as a small RGB image.

No VAE decode: each latent format has a fixed linear map from its channels to RGB (a (C x 3)
matrix and a bias, least-squares fits of decoded pixels on latents), the way ComfyUI's
"latent2rgb" previewer works. The factors are data in latent_rgb.json, each with its source
(ComfyUI's comfy/latent_formats.py); formats without published factors (CogVideoX) show their
first three channels, normalised, which still shows composition and motion.

The engine calls `LivePreview.step` from the pipeline's step callback; it reads the latents only
every `every` steps (or when `interval` seconds have passed), so a preview costs one small
matrix product per few steps, and a failure turns previews off for the call, never the render.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..base import preview_hook

log = logging.getLogger(__name__)

FACTORS_FILE = Path(__file__).with_name("latent_rgb.json")
PREVIEW_EVERY = 2  # steps between previews...
PREVIEW_INTERVAL_S = 1.0  # ...or this long, whichever comes first


@functools.lru_cache(maxsize=None)
def projection(name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(factors (C, 3), bias (3,)) of a latent format in latent_rgb.json; None if unknown."""
    entry = json.loads(FACTORS_FILE.read_text()).get(name)
    if not isinstance(entry, dict):
        return None
    return (np.asarray(entry["factors"], dtype=np.float32),
            np.asarray(entry["bias"], dtype=np.float32))


def latent_format(pipeline_class: str, channels: int) -> str | None:
    """The latent format of a pipeline's latents: by family, and for Wan by channel count
    (Wan 2.1 and 2.2 A14B: 16 channels; Wan 2.2 TI2V 5B's VAE: 48)."""
    if pipeline_class.startswith("Wan"):
        return {16: "wan21", 48: "wan22"}.get(channels)
    if pipeline_class.startswith("HunyuanVideo"):
        return "hunyuan_video" if channels == 16 else None
    if pipeline_class.startswith("LTX"):
        return "ltxv" if channels == 128 else None
    if pipeline_class == "StableVideoDiffusionPipeline":
        return "sd15" if channels == 4 else None  # SVD keeps SD's 4-channel VAE
    return None


def middle_frame(latents: Any, pipe: Any, request: Any) -> np.ndarray | None:
    """The middle latent frame of the first batch item as float32 (C, h, w), whatever the
    pipeline's layout: (B, C, F, h, w) for Wan and Hunyuan, (B, F, C, h, w) for CogVideoX and
    SVD, LTX's packed tokens (B, F*h*w, C) unpacked with its compression ratios."""
    name = type(pipe).__name__
    x = latents.detach()
    if name.startswith("LTX") and x.ndim == 3:
        t = int(getattr(pipe, "vae_temporal_compression_ratio", 8))
        s = int(getattr(pipe, "vae_spatial_compression_ratio", 32))
        f, h, w = (request.num_frames - 1) // t + 1, request.height // s, request.width // s
        if f * h * w != x.shape[1]:
            return None
        x = x[0].reshape(f, h, w, x.shape[2])[f // 2].permute(2, 0, 1)
    elif x.ndim == 5 and (name.startswith("CogVideoX") or name.startswith("StableVideo")):
        x = x[0, x.shape[1] // 2]
    elif x.ndim == 5:
        x = x[0, :, x.shape[2] // 2]
    elif x.ndim == 4:
        x = x[0]
    else:
        return None
    return x.float().cpu().numpy()


def to_rgb(frame: np.ndarray, fmt: str | None) -> np.ndarray:
    """(C, h, w) latent -> uint8 RGB (h, w, 3) by the format's projection (or the fallback)."""
    proj = projection(fmt) if fmt else None
    if proj is not None and proj[0].shape[0] == frame.shape[0]:
        factors, bias = proj
        rgb = np.einsum("chw,cd->hwd", frame, factors) + bias
        return (np.clip((rgb + 1.0) * 127.5, 0, 255)).astype(np.uint8)
    # No published factors: the first three channels (repeated when fewer), each stretched.
    chans = np.stack([frame[i % frame.shape[0]] for i in range(3)], axis=-1)
    lo, hi = chans.min(axis=(0, 1)), chans.max(axis=(0, 1))
    return (255.0 * (chans - lo) / np.maximum(hi - lo, 1e-6)).astype(np.uint8)


class LivePreview:
    """Per call: decides when a step's latents become a preview and hands it to `hook`."""

    def __init__(self, progress: Any, pipe: Any, request: Any, every: int = PREVIEW_EVERY,
                 interval: float = PREVIEW_INTERVAL_S) -> None:
        hook = preview_hook(progress)  # the progress callback's `preview` (engine.base)
        self.hook, self.pipe, self.request = hook, pipe, request
        self.every, self.interval = max(1, int(every)), interval
        self._last = time.monotonic()
        self.wants_latents = hook is not None and \
            "latents" in getattr(pipe, "_callback_tensor_inputs", ())

    def step(self, index: int, total: int, tensors: dict) -> None:
        """After step `index` (0-based) of `total`: a preview when one is due."""
        if not self.wants_latents or "latents" not in tensors:
            return
        done, now = index + 1, time.monotonic()
        if done % self.every and done != total and now - self._last < self.interval:
            return
        self._last = now
        try:
            frame = middle_frame(tensors["latents"], self.pipe, self.request)
            if frame is None:
                return
            fmt = latent_format(type(self.pipe).__name__, frame.shape[0])
            self.hook(to_rgb(frame, fmt))
        except Exception as exc:  # noqa: BLE001 - a preview must never fail a segment
            log.warning("live preview off for this segment: %s: %s", type(exc).__name__, exc)
            self.wants_latents = False

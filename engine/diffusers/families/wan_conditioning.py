"""Conditioning latents for chained Wan image-to-video segments ("latent" and "svi").

diffusers' WanImageToVideoPipeline.prepare_latents VAE-encodes the pixel video [start image,
zeros..., end image] into normalised latents (z_dim channels, L = (T - 1) / 4 + 1 frames) and
puts a 4-channel mask in front of them: channel c of latent frame l says whether pixel sub-frame
c of that latent frame is known (latent frame 0 stands for one pixel frame, repeated four times).
The transformer sees cat(noisy latents, mask, condition latents) on the channel axis.

For chained segments the engine builds that condition itself, while the lock on the pipeline is
held, by shadowing `prepare_latents` on the pipeline instance for one call (`installed`):

- "latent": the first condition latent is the previous segment's last denoised latent frame, so
  the hand-over skips the decode -> encode round trip that makes long shots drift. The rest is
  the stock padding (zeros, and the end image if any), with the stock mask.
- "svi" (Stable Video Infinity): [anchor | motion | zeros... | end], the anchor and the end image
  each encoded alone as a single frame, the motion latents being the previous segment's last M
  latent frames; the mask marks all four sub-frames of the anchor, motion and end latents known.

Noise comes from the same generator call as in the stock pipeline, so a seed means the same
noise in every conditioning mode.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np

from ...base import EngineError, GenerationRequest
from ..model_pool import PoolEntry


def segment(request: GenerationRequest) -> str:
    return f"segment {request.shot_id}_{request.segment_index}"


def latent_grid(pipe, request: GenerationRequest) -> tuple[int, int, int, int]:
    """(z_dim, latent frames, latent height, latent width) the pipeline uses for `request`."""
    temporal, spatial = pipe.vae_scale_factor_temporal, pipe.vae_scale_factor_spatial
    return (int(pipe.vae.config.z_dim), (request.num_frames - 1) // temporal + 1,
            request.height // spatial, request.width // spatial)


def check_chained(pipe, request: GenerationRequest, engine: str) -> None:
    """Everything about a latent / svi request that can be checked before the pipeline runs."""
    if pipe.config.get("expand_timesteps", False):
        raise EngineError(
            f"{segment(request)}: conditioning {request.conditioning!r} needs a Wan I2V "
            f"checkpoint with its own conditioning latents; engine {engine!r} loaded a TI2V "
            f"(expand_timesteps) one, which conditions by timestep instead. Use chain mode "
            f"last_frame or overlap with it")
    z_dim, frames, height, width = latent_grid(pipe, request)
    shape = None if request.context_latents is None else tuple(np.shape(request.context_latents))
    if shape is not None and (len(shape) != 4 or shape[0] != z_dim
                              or shape[2:] != (height, width)):
        raise EngineError(
            f"{segment(request)}: context_latents has shape {shape}; engine {engine!r} at "
            f"{request.width}x{request.height} needs ({z_dim}, M, {height}, {width}) as its "
            f"generate_with_latents returned them. Chained segments of one shot must share "
            f"engine, model and resolution")
    motion = 0 if shape is None else shape[1]
    if request.conditioning == "latent":
        if not motion:
            raise EngineError(f"{segment(request)}: conditioning 'latent' needs context_latents "
                              f"(the previous segment's last latent frame), got none")
        if request.start_image is None:
            raise EngineError(f"{segment(request)}: conditioning 'latent' needs start_image (the "
                              f"previous segment's last frame, for the image encoder) as well")
        return
    known = 1 + motion + (request.end_image is not None)
    if known >= frames:
        need = 4 * known + 1
        raise EngineError(
            f"{segment(request)}: svi conditioning of {request.num_frames} frames has "
            f"{frames} latent frames, too few for the anchor, {motion} motion latent(s)"
            f"{' and the end image' if request.end_image is not None else ''} plus one to "
            f"generate; give the segment at least {need} frames or fewer motion latents")


def normalise(pipe, latents):
    """VAE latents to the space the denoiser works in, as the stock pipeline does."""
    import torch

    config = pipe.vae.config
    mean = torch.tensor(config.latents_mean).view(1, config.z_dim, 1, 1, 1)
    inverse_std = 1.0 / torch.tensor(config.latents_std).view(1, config.z_dim, 1, 1, 1)
    return (latents - mean.to(latents)) * inverse_std.to(latents)


def encode(pipe, video, device, dtype):
    """Normalised latents of a pixel video (1, 3, T, H, W) in [-1, 1] (the distribution's mode,
    as the stock pipeline takes it)."""
    from diffusers.utils.torch_utils import get_module_execution_device

    video = video.to(device=get_module_execution_device(pipe.vae), dtype=pipe.vae.dtype)
    encoded = pipe.vae.encode(video)
    latents = encoded.latent_dist.mode() if hasattr(encoded, "latent_dist") else encoded.latents
    return normalise(pipe, latents.to(device=device, dtype=dtype))


def stock_mask(frames: int, height: int, width: int, end: bool):
    """The stock I2V mask (1, 4, L, h, w): latent frame 0 known, and the end image's pixel
    frame (the last sub-frame of the last latent frame) when there is one."""
    import torch

    mask = torch.zeros(1, 4, frames, height, width)
    mask[:, :, 0] = 1
    if end:
        mask[:, 3, -1] = 1
    return mask


def known_mask(known: list[bool], height: int, width: int):
    """(1, 4, L, h, w): all four sub-frames of each known latent frame are 1, the others 0."""
    import torch

    flags = torch.tensor(known, dtype=torch.float32).view(1, 1, len(known), 1, 1)
    return flags.expand(1, 4, len(known), height, width).clone()


class ChainedLatents:
    """A stand-in for `prepare_latents` (same signature) building latent / svi conditioning."""

    def __init__(self, pipe, entry: PoolEntry, request: GenerationRequest) -> None:
        self.pipe, self.entry, self.request = pipe, entry, request

    def __call__(self, image, batch_size: int, num_channels_latents: int = 16,
                 height: int = 480, width: int = 832, num_frames: int = 81, dtype=None,
                 device=None, generator=None, latents=None, last_image=None):
        import torch
        from diffusers.utils.torch_utils import randn_tensor

        pipe = self.pipe
        frames = (num_frames - 1) // pipe.vae_scale_factor_temporal + 1
        h, w = height // pipe.vae_scale_factor_spatial, width // pipe.vae_scale_factor_spatial
        if latents is None:
            latents = randn_tensor((batch_size, num_channels_latents, frames, h, w),
                                   generator=generator, device=device, dtype=dtype)
        else:
            latents = latents.to(device=device, dtype=dtype)
        build = self.latent if self.request.conditioning == "latent" else self.svi
        mask, condition = build(image, last_image, num_frames, height, width, device, dtype)
        condition = torch.cat([mask.to(condition), condition], dim=1)
        return latents, condition.repeat(batch_size, 1, 1, 1, 1)

    def context(self, device, dtype):
        import torch

        context = self.request.context_latents
        if context is None or np.shape(context)[1] == 0:
            return None
        array = np.ascontiguousarray(context, dtype=np.float32)
        return torch.from_numpy(array).unsqueeze(0).to(device=device, dtype=dtype)

    def latent(self, image, last_image, num_frames, height, width, device, dtype):
        """[previous last latent | stock padding], the stock mask."""
        import torch

        first = self.context(device, dtype)[:, :, -1:]
        if last_image is None:
            # The padding (a zero video) is the same for every segment of this size, so it is
            # encoded once per pipeline; at 81 frames of 832x480 that spares a full-length VAE
            # encode per segment. Frame 0 of it stands where the start image was in the stock
            # call; only its causal effect on the padding latents differs from stock.
            key = ("wan_padding", num_frames, height, width, str(device), str(dtype),
                   tuple(self.entry.degraded))
            padding = self.entry.embedding(key, lambda: encode(
                self.pipe, torch.zeros(1, 3, num_frames, height, width), device, dtype))
        else:
            video = torch.zeros(1, 3, num_frames, height, width)
            video[:, :, -1] = last_image[0].to(video)
            padding = encode(self.pipe, video, device, dtype)
        condition = torch.cat([first, padding[:, :, 1:]], dim=2)
        _, frames, h, w = condition.shape[1:]
        return stock_mask(frames, h, w, last_image is not None), condition

    def svi(self, image, last_image, num_frames, height, width, device, dtype):
        """[anchor | motion | zeros | end], all four sub-frames known on anchor, motion, end."""
        import torch

        # `image` is the anchor (the wan module passes it as the pipeline's image, so the CLIP
        # encoder of Wan 2.1 sees it too), preprocessed by the pipeline to (1, 3, H, W).
        anchor = encode(self.pipe, image[:1].unsqueeze(2), device, dtype)
        parts = [anchor]
        motion = self.context(device, dtype)
        if motion is not None:
            parts.append(motion)
        end = None
        if last_image is not None:
            end = encode(self.pipe, last_image[:1].unsqueeze(2), device, dtype)
        frames = (num_frames - 1) // self.pipe.vae_scale_factor_temporal + 1
        given = sum(p.shape[2] for p in parts) + (end is not None)
        _, channels, _, h, w = anchor.shape
        parts.append(anchor.new_zeros(1, channels, frames - given, h, w))
        if end is not None:
            parts.append(end)
        known = [True] * (given - (end is not None)) + [False] * (frames - given) + \
            [True] * (end is not None)
        return known_mask(known, h, w), torch.cat(parts, dim=2)


@contextlib.contextmanager
def installed(pipe, entry: PoolEntry, request: GenerationRequest) -> Iterator[Any]:
    """`pipe.prepare_latents` builds `request`'s chained conditioning for the calls made inside
    (the caller holds the pipeline's lock); the class's own method is back afterwards, also when
    the call fails."""
    builder = ChainedLatents(pipe, entry, request)
    pipe.prepare_latents = builder  # an instance attribute shadows the class method
    try:
        yield builder
    finally:
        vars(pipe).pop("prepare_latents", None)

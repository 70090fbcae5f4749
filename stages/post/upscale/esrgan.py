"""Model-based upscaling from Real-ESRGAN-style checkpoints (`upscale: {model: ...}`).

Two published architectures, recognised by their tensor names and sizes:
- RRDBNet (ESRGAN, RealESRGAN_x4plus / x2plus): `conv_first`, `body.N.rdbK.convM`, `conv_body`,
  `conv_up1/2`, `conv_hr`, `conv_last`. Its native scale is read from conv_first's input channels
  (3: x4, 12: x2 after a 2x pixel-unshuffle, 48: x1 after 4x).
- SRVGGNetCompact (realesr-general-x4v3, realesr-animevideov3): `body.N` convs with PReLU
  activations between them, a pixel shuffle, plus the nearest-upsampled input.
Widths, block counts and scale come from the shapes, so small and large variants load alike.
The original ESRGAN naming (`model.0`, `model.1.sub.N.RDB1.conv1.0`, ... `model.10`), still used
by community 4x models (4x-UltraSharp, Remacri, NMKD ...), is renamed to RRDBNet's first: the
same network, a Sequential's indices for names (old_esrgan_keys).

Frames are processed in tiles (with an overlap that is cut away) so memory stays bounded for any
frame size; the tile result is exact away from the borders' receptive field.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import cv2
import numpy as np

from stages.post.weights import ModelFileError, load_matching, pick_device, read_state_dict

TILE_PAD = 10


@dataclass(frozen=True)
class ArchConfig:
    kind: str  # "rrdb" | "srvgg"
    scale: int
    num_feat: int
    blocks: int  # RRDB blocks or SRVGG body convs
    grow: int = 0  # RRDB growth channels
    in_ch: int = 3
    out_ch: int = 3


def old_esrgan_keys(sd: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """`sd` with the original ESRGAN names turned into RRDBNet's (unchanged when it has none).

    The original is one Sequential: model.0 the first conv, model.1.sub.N the RRDB blocks
    (RDBk.convM.0: a conv inside a conv + activation Sequential) and model.1.sub.<blocks> the
    trunk conv, then per 2x an upsample, a conv and an activation, then the HR conv and the
    last conv. Two upsampling convs is the 4x network RRDBNet is; 2x and 8x ones differ in
    their number of upsampling stages and are refused with what they are."""
    if "model.0.weight" not in sd:
        return dict(sd)
    out: dict[str, Any] = {}
    tail: dict[int, dict[str, Any]] = {}
    blocks = {int(m.group(1)) for k in sd
              if (m := re.match(r"model\.1\.sub\.(\d+)\.RDB", k))}
    for key, value in sd.items():
        if m := re.match(r"model\.0\.(weight|bias)$", key):
            out[f"conv_first.{m.group(1)}"] = value
        elif m := re.match(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$", key):
            out[f"body.{m.group(1)}.rdb{m.group(2)}.conv{m.group(3)}.{m.group(4)}"] = value
        elif m := re.match(r"model\.1\.sub\.(\d+)\.(weight|bias)$", key):
            if int(m.group(1)) not in blocks:
                out[f"conv_body.{m.group(2)}"] = value
        elif m := re.match(r"model\.(\d+)\.(weight|bias)$", key):
            tail.setdefault(int(m.group(1)), {})[m.group(2)] = value
        else:
            raise ModelFileError(f"{path}: original-ESRGAN file with an unexpected tensor "
                                 f"{key!r}; only the RRDB network (model.0 ... model.N) loads")
    convs = sorted(tail)
    if len(convs) != 4:
        ups = max(len(convs) - 2, 0)
        raise ModelFileError(f"{path}: original-ESRGAN file with {ups} upsampling stage(s) "
                             f"({2 ** ups}x); only 4x networks (two stages) load")
    for index, name in zip(convs, ("conv_up1", "conv_up2", "conv_hr", "conv_last")):
        for part, value in tail[index].items():
            out[f"{name}.{part}"] = value
    return out


def infer_arch(sd: Mapping[str, Any], path: Path) -> ArchConfig:
    if "conv_first.weight" in sd:
        w = sd["conv_first.weight"]
        num_feat, in_total = int(w.shape[0]), int(w.shape[1])
        scale = {3: 4, 12: 2, 48: 1}.get(in_total)
        if scale is None:
            raise ModelFileError(f"{path}: RRDBNet conv_first takes {in_total} channels; "
                                 "expected 3 (x4), 12 (x2) or 48 (x1)")
        blocks = len({m.group(1) for k in sd if (m := re.match(r"body\.(\d+)\.rdb1\.", k))})
        if not blocks or "body.0.rdb1.conv1.weight" not in sd or "conv_last.weight" not in sd:
            raise ModelFileError(f"{path}: incomplete RRDBNet state dict (no body.N.rdb1 "
                                 "blocks or conv_last)")
        grow = int(sd["body.0.rdb1.conv1.weight"].shape[0])
        out_ch = int(sd["conv_last.weight"].shape[0])
        return ArchConfig("rrdb", scale, num_feat, blocks, grow, 3, out_ch)
    body = {int(m.group(1)): k for k in sd if (m := re.match(r"body\.(\d+)\.weight$", k))}
    if body:
        idx = sorted(body)
        convs = [i for i in idx if sd[body[i]].ndim == 4]
        prelus = [i for i in idx if sd[body[i]].ndim == 1]
        if len(convs) < 2 or not prelus or idx != list(range(len(idx))):
            raise ModelFileError(f"{path}: not an SRVGGNetCompact state dict with PReLU "
                                 f"activations (body layers {idx[:6]}...)")
        first, last = sd[body[convs[0]]], sd[body[convs[-1]]]
        in_ch, num_feat = int(first.shape[1]), int(first.shape[0])
        scale = math.isqrt(int(last.shape[0]) // 3)
        if scale * scale * 3 != int(last.shape[0]):
            raise ModelFileError(f"{path}: SRVGGNetCompact last conv has {last.shape[0]} "
                                 "channels; expected 3·scale²")
        return ArchConfig("srvgg", scale, num_feat, len(convs) - 2, 0, in_ch, 3)
    raise ModelFileError(f"{path} is neither an RRDBNet nor an SRVGGNetCompact state dict "
                         f"(keys start with: {', '.join(sorted(sd)[:5])}, ...)")


def _build(cfg: ArchConfig):
    import torch
    from torch import nn
    from torch.nn import functional as F

    if cfg.kind == "srvgg":
        class SRVGGNetCompact(nn.Module):
            def __init__(self):
                super().__init__()
                layers = [nn.Conv2d(cfg.in_ch, cfg.num_feat, 3, 1, 1), nn.PReLU(cfg.num_feat)]
                for _ in range(cfg.blocks):
                    layers += [nn.Conv2d(cfg.num_feat, cfg.num_feat, 3, 1, 1),
                               nn.PReLU(cfg.num_feat)]
                layers.append(nn.Conv2d(cfg.num_feat, cfg.out_ch * cfg.scale**2, 3, 1, 1))
                self.body = nn.ModuleList(layers)
                self.upsampler = nn.PixelShuffle(cfg.scale)

            def forward(self, x):
                out = x
                for layer in self.body:
                    out = layer(out)
                return self.upsampler(out) + F.interpolate(x, scale_factor=cfg.scale,
                                                           mode="nearest")

        return SRVGGNetCompact()

    class ResidualDenseBlock(nn.Module):
        def __init__(self, f, g):
            super().__init__()
            for i in range(4):
                self.add_module(f"conv{i + 1}", nn.Conv2d(f + i * g, g, 3, 1, 1))
            self.conv5 = nn.Conv2d(f + 4 * g, f, 3, 1, 1)
            self.lrelu = nn.LeakyReLU(0.2, True)

        def forward(self, x):
            feats = [x]
            for i in range(4):
                feats.append(self.lrelu(getattr(self, f"conv{i + 1}")(torch.cat(feats, 1))))
            return self.conv5(torch.cat(feats, 1)) * 0.2 + x

    class RRDB(nn.Module):
        def __init__(self, f, g):
            super().__init__()
            self.rdb1 = ResidualDenseBlock(f, g)
            self.rdb2 = ResidualDenseBlock(f, g)
            self.rdb3 = ResidualDenseBlock(f, g)

        def forward(self, x):
            return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x

    class RRDBNet(nn.Module):
        def __init__(self):
            super().__init__()
            f = cfg.num_feat
            unshuffle = {4: 1, 2: 4, 1: 16}[cfg.scale]
            self.conv_first = nn.Conv2d(cfg.in_ch * unshuffle, f, 3, 1, 1)
            self.body = nn.Sequential(*[RRDB(f, cfg.grow) for _ in range(cfg.blocks)])
            self.conv_body = nn.Conv2d(f, f, 3, 1, 1)
            self.conv_up1 = nn.Conv2d(f, f, 3, 1, 1)
            self.conv_up2 = nn.Conv2d(f, f, 3, 1, 1)
            self.conv_hr = nn.Conv2d(f, f, 3, 1, 1)
            self.conv_last = nn.Conv2d(f, cfg.out_ch, 3, 1, 1)
            self.lrelu = nn.LeakyReLU(0.2, True)

        def forward(self, x):
            if cfg.scale == 2:
                x = F.pixel_unshuffle(x, 2)
            elif cfg.scale == 1:
                x = F.pixel_unshuffle(x, 4)
            feat = self.conv_first(x)
            feat = feat + self.conv_body(self.body(feat))
            feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
            feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
            return self.conv_last(self.lrelu(self.conv_hr(feat)))

    return RRDBNet()


class ModelUpscaler:
    """Upscales uint8 RGB frames by the model's native scale, tile by tile."""

    def __init__(self, path: Path, device: str = "auto", tile: int = 256):
        sd = old_esrgan_keys(read_state_dict(path), Path(path))
        self.config = infer_arch(sd, Path(path))
        net = _build(self.config)
        load_matching(net, sd, Path(path), self.config.kind)
        self.device = pick_device(device)
        self.net = net.to(self.device).eval()
        self.tile = int(tile)
        self.lock = threading.Lock()

    @property
    def scale(self) -> int:
        return self.config.scale

    def _run(self, patch: np.ndarray) -> np.ndarray:
        import torch
        from torch.nn import functional as F

        h, w = patch.shape[:2]
        mod = {2: 2, 1: 4}.get(self.scale, 1) if self.config.kind == "rrdb" else 1
        ph, pw = (mod - h % mod) % mod, (mod - w % mod) % mod
        x = torch.from_numpy(np.ascontiguousarray(patch)).to(self.device)
        x = x.permute(2, 0, 1)[None].float() / 255.0
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else
                      "replicate")
        y = self.net(x)[0, :, : h * self.scale, : w * self.scale]
        return (y * 255.0 + 0.5).clamp(0, 255).byte().permute(1, 2, 0).cpu().numpy()

    def upscale(self, frame: np.ndarray) -> np.ndarray:
        import torch

        h, w = frame.shape[:2]
        s, t = self.scale, self.tile
        out = np.empty((h * s, w * s, 3), np.uint8)
        with self.lock, torch.inference_mode():
            for y0 in range(0, h, t):
                for x0 in range(0, w, t):
                    y1, x1 = min(y0 + t, h), min(x0 + t, w)
                    py0, px0 = max(0, y0 - TILE_PAD), max(0, x0 - TILE_PAD)
                    py1, px1 = min(h, y1 + TILE_PAD), min(w, x1 + TILE_PAD)
                    result = self._run(frame[py0:py1, px0:px1])
                    oy, ox = (y0 - py0) * s, (x0 - px0) * s
                    out[y0 * s:y1 * s, x0 * s:x1 * s] = \
                        result[oy:oy + (y1 - y0) * s, ox:ox + (x1 - x0) * s]
        return out

    def resize(self, frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """The model's output brought to `size` (w, h) when the asked factor differs."""
        up = self.upscale(frame)
        if (up.shape[1], up.shape[0]) == size:
            return up
        shrink = size[0] < up.shape[1]
        return cv2.resize(up, size, interpolation=cv2.INTER_AREA if shrink else
                          cv2.INTER_LANCZOS4)


@lru_cache(maxsize=2)
def load_upscaler(path: str, digest: str = "", device: str = "auto",
                  tile: int = 256) -> ModelUpscaler:
    """A loaded upscaler, shared by every shot that names the same file (and digest)."""
    return ModelUpscaler(Path(path), device, tile)

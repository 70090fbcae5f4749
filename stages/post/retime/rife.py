"""RIFE frame interpolation from a published checkpoint (`interpolate: {method: rife, model: ...}`).

Loads the IFNet state dict that Practical-RIFE / arXiv2020-RIFE publish for the RIFE 4.x family
(`train_log/flownet.pkl`, a `torch.save`d state dict with DataParallel's `module.` prefix; a
safetensors file with the same keys works too), and implements that IFNet in torch:

- `blockN` (4 or 5 of them, coarse to fine at scales 8,4,2,1 or 16,8,4,2,1): two stride-2 convs
  (`conv0`), eight residual convs with a learned per-channel scale (`convblock`), a stride-2
  transposed conv plus pixel shuffle (`lastconv`) giving 4 flow channels (t->0 and t->1), a mask
  channel and, from 4.22 on, 8 feature channels handed to the next block;
- `encode` (from 4.7 on): a small conv head whose features of both frames are warped along with
  them;
- the output blends both frames warped to time t by sigmoid(mask).

Which variant a checkpoint is (block count and widths, head size, whether features are handed on,
whether the mask accumulates) is read from the tensor shapes, so any 4.x checkpoint loads without
naming its version; a file that is not such a state dict is reported with what was expected.
torch loads only when this method is used.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from stages.post.weights import ModelFileError, load_matching, pick_device, read_state_dict


@dataclass(frozen=True)
class IFNetConfig:
    widths: tuple[int, ...]  # channels of each block, coarse to fine
    in_planes: tuple[int, ...]
    block_out: int  # channels after lastconv's pixel shuffle (4 flow + 1 mask + features)
    resconvs: int
    head_hidden: int  # 0: no encoder head (RIFE 4.0-4.6)
    head_out: int
    pass_features: bool  # 4.22+: each block's extra output channels feed the next block
    accumulate_mask: bool  # 4.0-4.6 add each block's mask; later versions replace it

    @property
    def scales(self) -> list[int]:
        return [2 ** (len(self.widths) - 1 - i) for i in range(len(self.widths))]

    @property
    def pad_multiple(self) -> int:
        return 8 * self.scales[0]


def infer_config(sd: Mapping[str, Any], path: Path) -> IFNetConfig:
    def shape(key: str) -> tuple[int, ...]:
        if key not in sd:
            raise ModelFileError(f"{path} is not a RIFE 4.x IFNet state dict: no {key!r} "
                                 f"(keys start with: {', '.join(sorted(sd)[:5])}, ...)")
        return tuple(sd[key].shape)

    blocks = sorted({int(m.group(1)) for k in sd if (m := re.match(r"block(\d+)\.", k))})
    if len(blocks) < 2 or blocks != list(range(len(blocks))):
        raise ModelFileError(f"{path} is not a RIFE 4.x IFNet state dict: expected block0, "
                             f"block1, ... (found blocks {blocks or 'none'})")
    widths, in_planes = [], []
    for b in blocks:
        in_planes.append(shape(f"block{b}.conv0.0.0.weight")[1])
        widths.append(shape(f"block{b}.conv0.1.0.weight")[0])
    block_out = shape("block0.lastconv.0.weight")[1] // 4
    resconvs = len({k.split(".")[2] for k in sd if re.match(r"block0\.convblock\.\d+\.conv\.weight$", k)})
    head_hidden = head_out = 0
    if "encode.cnn0.weight" in sd:
        head_hidden = shape("encode.cnn0.weight")[0]
        head_out = shape("encode.cnn3.weight")[1]  # ConvTranspose2d: (in, out, k, k)
    extra = block_out - 5
    pass_features = extra > 1 and in_planes[1] == 12 + 2 * head_out + extra
    expected0 = 7 + 2 * head_out
    expected1 = 12 + 2 * head_out + (extra if pass_features else 0)
    if block_out < 5 or in_planes[0] != expected0 or any(p != expected1 for p in in_planes[1:]):
        raise ModelFileError(
            f"{path}: unsupported IFNet layout (block inputs {in_planes}, block outputs "
            f"{block_out}, head features {head_out}); expected inputs {expected0} then "
            f"{expected1}: a RIFE 4.x flownet.pkl")
    return IFNetConfig(tuple(widths), tuple(in_planes), block_out, resconvs, head_hidden,
                       head_out, pass_features, accumulate_mask=head_hidden == 0)


def _build(cfg: IFNetConfig):
    import torch
    from torch import nn
    from torch.nn import functional as F

    def conv(cin, cout, stride):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.2, True))

    class ResConv(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv = nn.Conv2d(c, c, 3, 1, 1)
            self.beta = nn.Parameter(torch.ones((1, c, 1, 1)))
            self.relu = nn.LeakyReLU(0.2, True)

        def forward(self, x):
            return self.relu(self.conv(x) * self.beta + x)

    class IFBlock(nn.Module):
        def __init__(self, cin, c):
            super().__init__()
            self.conv0 = nn.Sequential(conv(cin, c // 2, 2), conv(c // 2, c, 2))
            self.convblock = nn.Sequential(*[ResConv(c) for _ in range(cfg.resconvs)])
            self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, 4 * cfg.block_out, 4, 2, 1),
                                          nn.PixelShuffle(2))

        def forward(self, x, flow, scale):
            x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
            if flow is not None:
                flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear",
                                     align_corners=False) / scale
                x = torch.cat((x, flow), 1)
            feat = self.convblock(self.conv0(x))
            tmp = F.interpolate(self.lastconv(feat), scale_factor=scale, mode="bilinear",
                                align_corners=False)
            return tmp[:, :4] * scale, tmp[:, 4:5], tmp[:, 5:]

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            h = cfg.head_hidden
            self.cnn0 = nn.Conv2d(3, h, 3, 2, 1)
            self.cnn1 = nn.Conv2d(h, h, 3, 1, 1)
            self.cnn2 = nn.Conv2d(h, h, 3, 1, 1)
            self.cnn3 = nn.ConvTranspose2d(h, cfg.head_out, 4, 2, 1)
            self.relu = nn.LeakyReLU(0.2, True)

        def forward(self, x):
            x = self.relu(self.cnn0(x))
            x = self.relu(self.cnn1(x))
            x = self.relu(self.cnn2(x))
            return self.cnn3(x)

    def warp(img, flow):
        _, _, h, w = img.shape
        gy, gx = torch.meshgrid(torch.linspace(-1, 1, h, device=img.device, dtype=img.dtype),
                                torch.linspace(-1, 1, w, device=img.device, dtype=img.dtype),
                                indexing="ij")
        grid = torch.stack((gx, gy), -1)[None]
        norm = flow.permute(0, 2, 3, 1) * torch.tensor(
            [2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=img.device, dtype=img.dtype)
        return F.grid_sample(img, grid + norm, mode="bilinear", padding_mode="border",
                             align_corners=True)

    class IFNet(nn.Module):
        def __init__(self):
            super().__init__()
            for i, (cin, c) in enumerate(zip(cfg.in_planes, cfg.widths)):
                self.add_module(f"block{i}", IFBlock(cin, c))
            if cfg.head_hidden:
                self.encode = Head()

        def forward(self, img0, img1, timestep, feats=None):
            f0, f1 = feats if feats is not None else self.features(img0, img1)
            t = img0[:, :1] * 0 + timestep
            flow = mask = feat = None
            w0, w1 = img0, img1
            for i, scale in enumerate(cfg.scales):
                block = getattr(self, f"block{i}")
                if flow is None:
                    parts = [img0, img1] + ([f0, f1] if f0 is not None else []) + [t]
                    flow, mask, feat = block(torch.cat(parts, 1), None, scale)
                else:
                    parts = [w0, w1]
                    if f0 is not None:
                        parts += [warp(f0, flow[:, :2]), warp(f1, flow[:, 2:4])]
                    parts += [t, mask] + ([feat] if cfg.pass_features else [])
                    fd, m, feat = block(torch.cat(parts, 1), flow, scale)
                    mask = mask + m if cfg.accumulate_mask else m
                    flow = flow + fd
                w0 = warp(img0, flow[:, :2])
                w1 = warp(img1, flow[:, 2:4])
            m = torch.sigmoid(mask)
            return (w0 * m + w1 * (1 - m)).clamp(0, 1)

        def features(self, img0, img1):
            if not cfg.head_hidden:
                return None, None
            return self.encode(img0), self.encode(img1)

    return IFNet()


class RifeInterpolator:
    """Frames between two frames at fractional times, with a loaded IFNet."""

    def __init__(self, path: Path, device: str = "auto"):
        sd = read_state_dict(path)
        self.config = infer_config(sd, Path(path))
        net = _build(self.config)
        load_matching(net, sd, Path(path), "IFNet")  # training-time extras are ignored
        self.device = pick_device(device)
        self.net = net.to(self.device).eval()
        self.lock = threading.Lock()  # one forward at a time per loaded model

    def between(self, f0: np.ndarray, f1: np.ndarray, times: Sequence[float]) -> list[np.ndarray]:
        import torch
        from torch.nn import functional as F

        if not times:
            return []
        h, w = f0.shape[:2]
        m = self.config.pad_multiple
        ph, pw = (m - h % m) % m, (m - w % m) % m

        def tensor(a):
            x = torch.from_numpy(np.ascontiguousarray(a)).to(self.device)
            x = x.permute(2, 0, 1)[None].float() / 255.0
            return F.pad(x, (0, pw, 0, ph))

        out = []
        with self.lock, torch.inference_mode():
            i0, i1 = tensor(f0), tensor(f1)
            feats = self.net.features(i0, i1)
            for t in times:
                y = self.net(i0, i1, float(t), feats)[0, :, :h, :w]
                y = (y * 255.0 + 0.5).clamp(0, 255).byte().permute(1, 2, 0).cpu().numpy()
                out.append(np.ascontiguousarray(y))
        return out


@lru_cache(maxsize=2)
def load_rife(path: str, digest: str = "", device: str = "auto") -> RifeInterpolator:
    """A loaded RIFE model, shared by every shot that names the same file (`digest`, the file's
    sha256, makes an edited file load again)."""
    return RifeInterpolator(Path(path), device)

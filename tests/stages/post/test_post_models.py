"""Model-based stages from published checkpoint formats, with tiny random weights written here:
RIFE 4.x IFNet (`flownet.pkl`) for interpolate, RRDBNet / SRVGGNetCompact for upscale.

The state dicts are built key by key in the published layout (not from our own modules), so the
tests check that our architectures load exactly those names and shapes. Known answers come from
weights chosen to make the networks do something predictable (zero residuals, a constant flow).
Real weights: set REELFORGE_RIFE_WEIGHTS / REELFORGE_ESRGAN_WEIGHTS to a file to run those tests
too; they skip otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from stages.post.chain import parse_stage, resolve_post_chain, run_post_chain  # noqa: E402
from stages.post.weights import ModelFileError  # noqa: E402
from tests.helpers.post_media import panning, psnr  # noqa: E402

torch.set_num_threads(1)


def _conv(sd, name, cin, cout, k=3, transpose=False, gen=None):
    shape = (cin, cout, k, k) if transpose else (cout, cin, k, k)
    sd[f"{name}.weight"] = torch.randn(shape, generator=gen) * 0.05
    sd[f"{name}.bias"] = torch.zeros(cout)


def rife_state_dict(version: str, c: int = 8, seed: int = 0) -> dict:
    """A tiny IFNet state dict in the Practical-RIFE layout. 4.6: four blocks, no encoder, 6
    output channels; 4.25: five blocks, a 16->4 channel encoder, 13 output channels of which 8
    are features handed to the next block."""
    gen = torch.Generator().manual_seed(seed)
    sd: dict = {}
    if version == "4.6":
        blocks, head, out = 4, None, 6
        ins = [7] + [12] * 3
    else:
        blocks, head, out = 5, (16, 4), 13
        ins = [7 + 8] + [12 + 8 + 8] * 4
        hid, hout = head
        _conv(sd, "encode.cnn0", 3, hid, gen=gen)
        _conv(sd, "encode.cnn1", hid, hid, gen=gen)
        _conv(sd, "encode.cnn2", hid, hid, gen=gen)
        _conv(sd, "encode.cnn3", hid, hout, k=4, transpose=True, gen=gen)
    for b in range(blocks):
        p = f"block{b}"
        _conv(sd, f"{p}.conv0.0.0", ins[b], c // 2, gen=gen)
        _conv(sd, f"{p}.conv0.1.0", c // 2, c, gen=gen)
        for r in range(8):
            _conv(sd, f"{p}.convblock.{r}.conv", c, c, gen=gen)
            sd[f"{p}.convblock.{r}.beta"] = torch.ones(1, c, 1, 1)
        _conv(sd, f"{p}.lastconv.0", c, 4 * out, k=4, transpose=True, gen=gen)
    # DataParallel's prefix, as the published flownet.pkl files have it.
    return {f"module.{k}": v for k, v in sd.items()}


def save(sd: dict, path: Path) -> Path:
    torch.save(sd, str(path))
    return path


def rife(frames, path, times_factor=2):
    steps = resolve_post_chain([{"stage": "interpolate", "factor": times_factor,
                                 "method": "rife", "model": str(path), "device": "cpu"}], {})
    out, _ = run_post_chain(iter(frames), 16, steps)
    return list(out)


@pytest.mark.parametrize("version", ["4.6", "4.25"])
def test_rife_checkpoint_loads_and_interpolates(tmp_path, version):
    path = save(rife_state_dict(version), tmp_path / "flownet.pkl")
    frames = panning(3)
    out = rife(frames, path)
    assert len(out) == 5 and all(f.shape == frames[0].shape and f.dtype == np.uint8 for f in out)
    assert np.array_equal(out[0], frames[0]) and np.array_equal(out[2], frames[1])


@pytest.mark.parametrize("version", ["4.6", "4.25"])
def test_rife_with_zero_flow_and_mask_is_a_blend(tmp_path, version):
    sd = rife_state_dict(version)
    for key in [k for k in sd if ".lastconv.0." in k]:
        sd[key] = torch.zeros_like(sd[key])  # flow 0, mask 0 -> sigmoid 0.5
    frames = panning(2)
    out = rife(frames, save(sd, tmp_path / "flownet.pkl"))
    blend = (frames[0].astype(np.float32) + frames[1]) / 2
    assert np.abs(out[1].astype(np.float32) - blend).max() <= 1.0


def test_rife_constant_flow_warps_by_the_right_amount(tmp_path):
    # Block 0's transposed conv bias sets flow channel 0 (x of the t->0 flow) to b before the
    # pixel shuffle; the block scales it by its scale (8 of four blocks), later blocks add 0.
    # A large mask bias makes the output frame 0 warped: out(x) = f0(x + 8b).
    sd = rife_state_dict("4.6")
    for key in [k for k in sd if ".lastconv.0." in k]:
        sd[key] = torch.zeros_like(sd[key])
    bias = sd["module.block0.lastconv.0.bias"]
    bias[0:4] = 0.25  # channels 0..3 shuffle into output channel 0: flow x = 0.25 * 8 = 2 px
    bias[16:20] = 20.0  # output channel 4: the mask
    frames = panning(2, dx=3, dy=0)
    out = rife(frames, save(sd, tmp_path / "flownet.pkl"))
    shifted = frames[0][:, 2:]
    assert np.abs(out[1][:, :-2].astype(int) - shifted).max() <= 1


def test_rife_rejects_other_files(tmp_path):
    bad = save({"module.conv.weight": torch.zeros(3, 3, 3, 3)}, tmp_path / "other.pkl")
    with pytest.raises(ModelFileError, match="not a RIFE 4.x IFNet"):
        rife(panning(2), bad)
    text = tmp_path / "notes.pkl"
    text.write_text("not a checkpoint")
    with pytest.raises(ModelFileError, match="cannot read model file"):
        rife(panning(2), text)


@pytest.mark.skipif(not os.environ.get("REELFORGE_RIFE_WEIGHTS"),
                    reason="set REELFORGE_RIFE_WEIGHTS to a RIFE 4.x flownet.pkl")
def test_real_rife_weights_beat_a_blend():
    truth = panning(5, dx=4, dy=2, h=96, w=128)
    out = rife(truth[::2], os.environ["REELFORGE_RIFE_WEIGHTS"])
    blend = (truth[0].astype(np.float32) + truth[2]) / 2
    assert psnr(out[1], truth[1]) > psnr(blend.astype(np.uint8), truth[1]) + 3


# --- Real-ESRGAN-style upscalers ---------------------------------------------------------------


def rrdb_state_dict(scale: int, feat: int = 8, grow: int = 4, blocks: int = 2) -> dict:
    gen = torch.Generator().manual_seed(1)
    sd: dict = {}
    _conv(sd, "conv_first", 3 * {4: 1, 2: 4, 1: 16}[scale], feat, gen=gen)
    for b in range(blocks):
        for r in (1, 2, 3):
            for i in range(1, 5):
                _conv(sd, f"body.{b}.rdb{r}.conv{i}", feat + (i - 1) * grow, grow, gen=gen)
            _conv(sd, f"body.{b}.rdb{r}.conv5", feat + 4 * grow, feat, gen=gen)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        _conv(sd, name, feat, feat, gen=gen)
    _conv(sd, "conv_last", feat, 3, gen=gen)
    return {"params_ema": sd}  # Real-ESRGAN's release wrapper


def srvgg_state_dict(scale: int = 4, feat: int = 8, convs: int = 2, zero: bool = False) -> dict:
    gen = torch.Generator().manual_seed(2)
    sd: dict = {}
    layer = 0
    for i in range(convs + 2):
        cin = 3 if i == 0 else feat
        cout = 3 * scale * scale if i == convs + 1 else feat
        _conv(sd, f"body.{layer}", cin, cout, gen=gen)
        layer += 1
        if i < convs + 1:
            sd[f"body.{layer}.weight"] = torch.full((feat,), 0.25)  # PReLU
            layer += 1
    if zero:
        sd = {k: torch.zeros_like(v) for k, v in sd.items()}
    return {"params": sd}


def upscale(frames, path, factor, **kw):
    steps = resolve_post_chain([{"stage": "upscale", "factor": factor, "model": str(path),
                                 "device": "cpu", **kw}], {})
    out, _ = run_post_chain(iter(frames), 16, steps)
    return list(out)


@pytest.mark.parametrize("scale, factor", [(4, 4), (2, 2), (4, 2), (1, 1.5)])
def test_rrdbnet_checkpoint_upscales(tmp_path, scale, factor):
    path = save(rrdb_state_dict(scale), tmp_path / f"RealESRGAN_x{scale}plus.pth")
    frames = panning(2)
    out = upscale(frames, path, factor)
    h, w = frames[0].shape[:2]
    assert out[0].shape == (round(h * factor / 2) * 2, round(w * factor / 2) * 2, 3)


def original_esrgan_names(sd: dict) -> dict:
    """RRDBNet's tensors under the original ESRGAN names (4x-UltraSharp, Remacri, ...)."""
    blocks = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("body."))
    tail = {"conv_first": "model.0", "conv_body": f"model.1.sub.{blocks}",
            "conv_up1": "model.3", "conv_up2": "model.6", "conv_hr": "model.8",
            "conv_last": "model.10"}
    out = {}
    for key, value in sd.items():
        name, part = key.rsplit(".", 1)
        if name in tail:
            out[f"{tail[name]}.{part}"] = value
        else:  # body.B.rdbR.convC
            _, b, r, c = name.split(".")
            out[f"model.1.sub.{b}.RDB{r[3:]}.{c}.0.{part}"] = value
    return out


def test_original_esrgan_names_load_as_the_same_network(tmp_path):
    """Community 4x models keep the original ESRGAN naming: the same RRDBNet loads from it and
    upscales to the same pixels; a 2x one (one upsampling stage) is refused with what it is."""
    sd = rrdb_state_dict(4)["params_ema"]
    new = save({"params_ema": sd}, tmp_path / "RealESRGAN_x4plus.pth")
    old = save(original_esrgan_names(sd), tmp_path / "4x-UltraSharp.pth")
    frames = panning(1)
    assert np.array_equal(upscale(frames, new, 4)[0], upscale(frames, old, 4)[0])
    two_x = {k: v for k, v in original_esrgan_names(sd).items()
             if not k.startswith(("model.6.", "model.10."))}
    two_x = {k.replace("model.8.", "model.5.").replace("model.10.", "model.7."): v
             for k, v in two_x.items()}
    two_x["model.7.weight"], two_x["model.7.bias"] = sd["conv_last.weight"], sd["conv_last.bias"]
    with pytest.raises(ModelFileError, match="1 upsampling stage.*2x.*only 4x"):
        upscale(frames, save(two_x, tmp_path / "2x-old.pth"), 2)


def test_srvgg_with_zero_residual_is_nearest_upscaling(tmp_path):
    path = save(srvgg_state_dict(zero=True), tmp_path / "realesr-general-x4v3.pth")
    frame = panning(1)[0]
    (out,) = upscale([frame], path, 4)
    h, w = frame.shape[:2]
    assert np.array_equal(out, cv2.resize(frame, (4 * w, 4 * h), interpolation=cv2.INTER_NEAREST))


def test_model_tiles_give_the_same_frame(tmp_path):
    # Receptive field of 4 convs: 4 px, inside the tile overlap, so tiling changes nothing.
    path = save(srvgg_state_dict(), tmp_path / "srvgg.pth")
    frame = panning(1)[0]
    (whole,) = upscale([frame], path, 4, tile=4096)
    (tiled,) = upscale([frame], path, 4, tile=32)
    assert np.array_equal(whole, tiled)


def test_upscaler_rejects_other_files(tmp_path):
    path = save({"params": {"head.weight": torch.zeros(3)}}, tmp_path / "x.pth")
    with pytest.raises(ModelFileError, match="neither an RRDBNet nor an SRVGGNetCompact"):
        upscale(panning(1), path, 2)
    with pytest.raises(ValueError, match="tile only applies with a model"):
        parse_stage({"stage": "upscale", "tile": 64})


@pytest.mark.skipif(not os.environ.get("REELFORGE_ESRGAN_WEIGHTS"),
                    reason="set REELFORGE_ESRGAN_WEIGHTS to Real-ESRGAN weights")
def test_real_upscaler_weights_beat_lanczos():
    big = panning(1, h=96, w=128)[0]
    small = cv2.resize(big, (32, 24), interpolation=cv2.INTER_AREA)
    (out,) = upscale([small], os.environ["REELFORGE_ESRGAN_WEIGHTS"], 4)
    lanczos = cv2.resize(small, (128, 96), interpolation=cv2.INTER_LANCZOS4)
    assert psnr(out, big) > psnr(lanczos, big) - 1.0

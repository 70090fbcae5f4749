"""Depth estimation through transformers from a local folder (a tiny random Depth Anything
saved in tmp; nothing downloads), and depth map files."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from engine.base import EngineConfigError
from engine.depth import estimate
from engine.depth.estimate import depth_model_identity, estimate_depth
from engine.depth.maps import DepthMapError, load_depth_map, read_depth_map
from tests.helpers.depth_scenes import save_tiny_depth_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_tiny_depth_model(tmp_path_factory.mktemp("tiny_depth"))


def test_estimate_shape_range_and_cache(tiny_model, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    estimate.clear_depth_models()
    images = np.random.default_rng(0).integers(0, 255, (3, 48, 64, 3), dtype=np.uint8)
    depth = estimate_depth(images, tiny_model)
    assert depth.shape == (3, 48, 64) and depth.dtype == np.float32
    # Normalised over the whole call: one frame holds 1 and one holds 0.
    assert depth.min() == 0.0 and depth.max() == 1.0
    from engine import local_models

    loaded = dict(local_models._models)
    again = estimate_depth(images, str(tiny_model))
    assert np.array_equal(depth, again)
    assert dict(local_models._models) == loaded  # loaded once per folder
    assert depth_model_identity(tiny_model) == depth_model_identity(str(tiny_model))


def test_missing_folder_and_wrong_model_are_config_errors(tmp_path):
    image = np.zeros((1, 16, 16, 3), np.uint8)
    with pytest.raises(EngineConfigError, match="no such folder"):
        estimate_depth(image, tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EngineConfigError, match="no config.json"):
        estimate_depth(image, tmp_path / "empty")
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(EngineConfigError, match="not a depth estimation model"):
        estimate_depth(image, bert)


@pytest.mark.parametrize("bits", [8, 16])
def test_depth_files_read_white_as_near(tmp_path, bits):
    ramp = np.linspace(0, 1, 20 * 10).reshape(10, 20)
    scale, dtype = (65535, np.uint16) if bits == 16 else (255, np.uint8)
    cv2.imwrite(str(tmp_path / "d.png"), np.rint(ramp * scale).astype(dtype))
    depth = read_depth_map(tmp_path / "d.png")
    assert depth.dtype == np.float32 and depth.shape == (10, 20)
    assert depth[0, 0] == 0.0 and depth[-1, -1] == 1.0
    fitted = load_depth_map(tmp_path / "d.png", 64, 48)
    assert fitted.shape == (48, 64) and 0.0 <= fitted.min() and fitted.max() <= 1.0


def test_rgb_depth_is_luminance_and_junk_is_refused(tmp_path):
    grey = np.full((8, 8, 3), 200, np.uint8)
    cv2.imwrite(str(tmp_path / "rgb.png"), grey)
    assert read_depth_map(tmp_path / "rgb.png") == pytest.approx(np.full((8, 8), 200 / 255))
    (tmp_path / "junk.png").write_text("not a picture")
    with pytest.raises(DepthMapError, match="white = near"):
        read_depth_map(tmp_path / "junk.png")

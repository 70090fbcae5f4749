"""`python -m flows.models` as a user runs it: every engine's weights found or missing, with the
hf download command; single files checked against a configs-only folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import comfy_files as cf
from tests.helpers import tiny_pipelines as tiny

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_CACHE": str(tmp / "hf-cache"), "HF_HUB_OFFLINE": "1",
           "REELFORGE_MODELS_DIR": str(tmp / "unused"),
           "REELFORGE_CALIBRATION_DIR": str(tmp / "magcache")}
    return subprocess.run([sys.executable, "-m", "flows.models", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def section(output: str, engine: str) -> list[str]:
    """The lines of one engine's block: its header, then the indented lines."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{engine}: "))
    block = [lines[start]]
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        block.append(line)
    return block


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    tiny.save_wan_t2v(root / "Wan2.1-T2V-1.3B-Diffusers")
    # A one-expert folder where the two-expert engine looks: found, but the engine refuses it.
    shutil.copytree(root / "Wan2.1-T2V-1.3B-Diffusers", root / "Wan2.2-T2V-A14B-Diffusers")
    return root


def test_every_engine_found_or_missing_with_the_download_command(models_dir, tmp_path):
    result = run("--models-dir", str(models_dir), tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "preview" not in out
    found = section(out, "wan21_t2v")
    assert found[0] == "wan21_t2v: found"
    folder = models_dir / "Wan2.1-T2V-1.3B-Diffusers"
    assert f"  model: found {folder} (WanPipeline folder), but engine.model is not set" in found
    assert "  weights: found in the folder: text_encoder, transformer, vae" in found
    assert (f"  render with: python -m flows.render storyboard=ep01 engine=wan21_t2v "
            f"engine.model={folder}") in found
    missing = section(out, "wan22_i2v_a14b")
    assert missing[0] == "wan22_i2v_a14b: missing"
    assert (f"  download: hf download Wan-AI/Wan2.2-I2V-A14B-Diffusers --local-dir "
            f"{models_dir / 'Wan2.2-I2V-A14B-Diffusers'}") in missing
    refused = section(out, "wan22_t2v_a14b")
    assert refused[0] == "wan22_t2v_a14b: problem"
    assert any(line.startswith("  problem: engine.model=") and "has no transformer_2" in line
               for line in refused)
    assert not any("render with" in line for line in refused)
    # Every engine but preview has a block; none says huggingface-cli.
    for engine in ("cogvideox", "hunyuan_t2v", "hunyuan_i2v", "ltx", "svd", "wan21_i2v",
                   "wan22_t2v_a14b", "wan22_ti2v_5b", "wan_vace", "wan_animate", "wan_v2v"):
        assert section(out, engine)
    assert "huggingface-cli" not in out
    assert '--include "model_index.json" --include "*/*"' in "\n".join(section(out, "ltx"))
    # What the found engine still needs for its draft profile and for step_cache=mag.
    assert ("  profile draft: set engine.profiles.draft.lora=<step-distilled LoRA>.safetensors "
            "(LightX2V / Lightning) to use it") in found
    assert any(line.startswith("  magcache: not calibrated (for step_cache=mag: python -m "
                               "flows.calibrate engine=wan21_t2v") for line in found)


def test_single_files_over_a_configs_only_folder(models_dir, tmp_path):
    folder = models_dir / "Wan2.1-T2V-1.3B-Diffusers"
    configs = tmp_path / "configs"
    shutil.copytree(folder, configs, ignore=shutil.ignore_patterns("*.safetensors"))
    high = tmp_path / "wan2.1_t2v_tiny.safetensors"
    cf.save_original(cf.transformer_state(folder), high)
    args = ["engine=wan21_t2v", f"engine.model={configs}",
            f"engine.options.files.transformer={high}"]
    result = run(*args, tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    block = section(result.stdout, "wan21_t2v")
    assert block[0] == "wan21_t2v: missing"
    assert "  transformer: from engine.options.files.transformer (the folder has no weights " \
           "for it)" in block
    assert any(line.startswith("  vae: missing:") for line in block)
    assert (f'  download: hf download Wan-AI/Wan2.1-T2V-1.3B-Diffusers --local-dir {configs} '
            f'--include "vae/*"') in block
    assert any(line.startswith(f"  files.transformer: found {high} (fp32)") and
               "a Wan transformer in the original Wan / ComfyUI layout" in line
               for line in block)

    vae = folder / "vae" / "diffusion_pytorch_model.safetensors"
    t5 = folder / "text_encoder" / "model.safetensors"
    result = run(*args, f"engine.options.files.vae={vae}",
                 f"engine.options.files.text_encoder={t5}", tmp=tmp_path)
    block = section(result.stdout, "wan21_t2v")
    assert block[0] == "wan21_t2v: ready", block
    assert not any("problem" in line for line in block)


def test_bad_command_line_exits_2(tmp_path):
    result = run("engine.model=/x", tmp=tmp_path)
    assert result.returncode == 2 and "engine=NAME" in result.stderr
    result = run("engine=nope", tmp=tmp_path)
    assert result.returncode == 2 and "no such engine config" in result.stderr


def test_helper_models_found_missing_or_wrong(tmp_path):
    """depth.model / pose.model / pose.detector: not set (what needs it, what to save), found
    (its model type), or the error a render would give."""
    from tests.helpers.pose_scenes import save_tiny_pose_model

    pose = save_tiny_pose_model(tmp_path / "vitpose")
    result = run("engine=wan21_t2v", "--no-construct", f"pose.model={pose}",
                 f"pose.detector={tmp_path / 'nowhere'}", tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("Helper models")[1].splitlines()
    assert any(line.startswith("  depth.model: not set (`depth: estimate` shots") and
               "Depth-Anything" in line for line in lines)
    assert f"  pose.model: found {pose} (vitpose)" in lines
    assert any(line.startswith("  pose.detector: error: pose.detector=") and
               "no such folder" in line for line in lines)

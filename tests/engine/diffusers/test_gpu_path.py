"""What a GPU user turns on, exercised on the CPU with tiny random-weight pipelines: compile
with step caches and group offload (through the flow), compile on models without declared
repeated blocks, MagCache's step count per expert and its calibration file, which attention and
quantization choices reach the segment key, and `attention_backend: auto`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.diffusers import attention, step_cache
from engine.diffusers.options import EngineConfigError
from engine.diffusers.model_pool import ModelPool
from engine.registry import get_engine
from flows.render import EXIT_OK, run
from flows.config.settings import RenderSettings
from tests.helpers import tiny_pipelines as tiny

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu-path-models")
    return {"t2v": tiny.save_wan_t2v(root / "wan-t2v"),
            "i2v2": tiny.save_wan22_i2v(root / "wan22-i2v"),
            "cog": tiny.save_cogvideox(root / "cog"), "svd": tiny.save_svd(root / "svd")}


request = tiny.tiny_request


def engine(name: str, model, **options):
    return get_engine(name, model=str(model), pool=ModelPool(), **options)


def start_image() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)


STORYBOARD = """
fps: 16
resolution: 64x64
shots:
  - {id: a, prompt: "a lighthouse", frames: 9, steps: 3}
  - {id: b, prompt: "the sea", frames: 9, steps: 3}
"""


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("options, fullgraph", [
    ({"step_cache": "first_block"}, True),
    ({"step_cache": "mag", "step_cache_ratios": [1.0, 1.02, 0.98]}, True),
    ({"offload": "group"}, False),
    ({"offload": "group", "step_cache": "first_block"}, False),
], ids=["first_block", "mag", "group_offload", "group_offload+first_block"])
def test_compile_with_hooks_renders_through_the_flow(tmp_path, models, options, fullgraph):
    (tmp_path / "ep.yaml").write_text(STORYBOARD)
    out = tmp_path / "renders"
    settings = RenderSettings(
        storyboard=str(tmp_path / "ep.yaml"), output_dir=str(out), post=[], retry_delay=0.0,
        retries=0, engine={"name": "wan21_t2v", "model": str(models["t2v"]),
                           "options": {"compile": True, **options}, "params": {}})
    assert run(settings) == EXIT_OK
    manifest = json.loads((out / "ep" / "manifest.json").read_text())
    assert manifest["segments_rendered"] == 2
    runtime = manifest["engine_runtime"]
    # Regional compile of the blocks, with the hooks outside the compiled graphs; fullgraph
    # only where no hook sits inside a block (group offload hooks every leaf layer).
    assert runtime["compile"] == "regional" and runtime["fullgraph"] is fullgraph
    assert runtime["attention"] == "native"  # auto on the CPU: PyTorch SDPA


def test_compiled_output_matches_eager(models):
    eager = engine("wan21_t2v", models["t2v"]).generate(request())
    compiled = engine("wan21_t2v", models["t2v"], compile=True, step_cache="first_block",
                      step_cache_threshold=0.01)
    frames = compiled.generate(request())
    assert compiled.runtime()["compile"] == "regional"
    assert np.abs(frames.astype(int) - eager.astype(int)).max() <= 2


def test_models_without_declared_blocks_compile(models):
    """CogVideoX declares no _repeated_blocks (its block list is found instead); SVD's UNet has
    none and compiles whole. Both used to raise at load."""
    cog = engine("cogvideox", models["cog"], compile=True)
    assert cog.generate(request(fps=8)).shape == (9, 64, 64, 3)
    assert cog.runtime()["compile"] == "regional"
    svd = engine("svd", models["svd"], compile=True)
    svd.load()  # compiling SVD's UNet whole takes ~1 min on the CPU: the load is what broke
    assert svd.runtime()["compile"] == "whole" and svd.runtime()["fullgraph"] is False


def _count_forwards(pipe) -> list[list[int]]:
    counts: list[list[int]] = []
    for module in step_cache.denoiser_modules(pipe):
        calls: list[int] = []
        counts.append(calls)
        original = module.forward
        module.forward = lambda *a, _f=original, _c=calls, **k: (_c.append(1), _f(*a, **k))[1]
    return counts


def test_magcache_gets_each_experts_share_of_the_steps(models):
    wan = engine("wan22_i2v_a14b", models["i2v2"], step_cache="mag",
                 step_cache_ratios=[1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0])
    wan.load()
    entry = wan.pool._entries[wan.pool_key]
    pipe = entry.value
    counts = _count_forwards(pipe)
    steps = 7
    wan.generate(request(start_image=start_image(), params={"steps": steps, "cfg": 2.0}))
    configs = [m._reelforge_step_cache for m in step_cache.denoiser_modules(pipe)]
    per_expert = [c.num_inference_steps for c in configs]
    # Each expert's MagCache counts the steps it runs (CFG: two forwards a step), not the 28
    # diffusers assumes, nor the whole schedule for the low-noise expert.
    assert per_expert == [len(c) // 2 for c in counts] == step_cache.expert_steps(pipe, steps)
    assert sum(per_expert) == steps and all(n > 0 for n in per_expert)
    assert [len(c.mag_ratios) for c in configs] == per_expert


def test_calibration_writes_what_the_engine_reads(models, tmp_path, monkeypatch, capsys):
    from flows.calibrate import run as calibrate

    monkeypatch.setenv("REELFORGE_CALIBRATION_DIR", str(tmp_path / "cal"))
    config = {"name": "wan22_i2v_a14b", "model": str(models["i2v2"]), "options": {},
              "params": {"steps": 6}}
    with pytest.raises(EngineConfigError, match="flows.calibrate"):
        engine("wan22_i2v_a14b", models["i2v2"], step_cache="mag")  # nothing calibrated yet
    assert calibrate({"engine": config, "resolution": "64x64", "frames": 9, "prompt": "a boat"},
                     tmp_path) == EXIT_OK
    assert "Wrote 6-step ratios" in capsys.readouterr().out
    mag = engine("wan22_i2v_a14b", models["i2v2"], step_cache="mag")
    written = json.loads(mag.calibration_path().read_text())
    tables = written["tables"]["6"]
    mag.load()
    pipe = mag.pool._entries[mag.pool_key].value
    # One table per expert, as long as the steps that expert ran.
    assert [len(t) for t in tables] == step_cache.expert_steps(pipe, 6)
    assert mag.generate(request(start_image=start_image(),
                                params={"steps": 6})).shape == (9, 64, 64, 3)
    # The ratios decide which steps are skipped: they are part of the segment key.
    other = engine("wan22_i2v_a14b", models["i2v2"], step_cache="mag",
                   step_cache_ratios=[1.0] * 6)
    assert "step_cache_ratios" in mag.identity() and mag.identity() != other.identity()
    # A second step count lands in the same file, beside the first.
    assert calibrate({"engine": {**config, "params": {"steps": 4}}, "resolution": "64x64",
                      "frames": 9}, tmp_path) == EXIT_OK
    assert sorted(json.loads(mag.calibration_path().read_text())["tables"]) == ["4", "6"]


def test_bad_calibration_file_is_a_config_error(models, tmp_path):
    bad = tmp_path / "ratios.json"
    bad.write_text('{"format": "something else", "secret": "line"}')
    with pytest.raises(EngineConfigError, match="not a MagCache calibration file") as info:
        engine("wan21_t2v", models["t2v"], step_cache="mag", step_cache_ratios=str(bad))
    assert "secret" not in str(info.value) and str(bad) in str(info.value)


@pytest.mark.parametrize("backend, in_key", [
    ("auto", False), ("native", False), ("flash", False), ("_flash_3", False),
    ("_native_cudnn", False), ("sage", True), ("_sage_qk_int8_pv_fp8_cuda_sm90", True),
])
def test_only_pixel_changing_attention_is_in_the_key(models, backend, in_key):
    default = engine("wan21_t2v", models["t2v"]).identity()
    chosen = engine("wan21_t2v", models["t2v"], attention_backend=backend).identity()
    assert (chosen != default) is in_key
    assert attention.changes_pixels(backend) is in_key


def test_quantization_is_in_the_key_and_fp8_needs_a_gpu(models):
    default = engine("wan21_t2v", models["t2v"])
    stored = engine("wan21_t2v", models["t2v"], quantize="fp8_storage")
    assert stored.identity() != default.identity()
    frames = stored.generate(request())
    assert frames.shape == (9, 64, 64, 3) and stored.runtime()["quantize"] == "fp8_storage"
    int8 = engine("wan21_t2v", models["t2v"], quantize="int8")  # torchao, weight-only
    assert int8.identity() not in (default.identity(), stored.identity())
    assert int8.generate(request()).shape == (9, 64, 64, 3)
    with pytest.raises(Exception, match="fp8.*compute capability 8.9"):
        engine("wan21_t2v", models["t2v"], quantize="fp8").load()
    with pytest.raises(EngineConfigError, match="quantize='int4'.*fp8_storage"):
        engine("wan21_t2v", models["t2v"], quantize="int4")


def test_fp8_storage_renders_in_bf16_as_on_a_gpu(models):
    """On a GPU the dtype is bf16 and Wan keeps some layers in fp32: layerwise casting once
    computed in the first parameter's fp32 and fed fp32 latents to the bf16 patch embedding
    (found by tests/perf/gpu_smoke.py on an H200). The CPU runs the same dtypes here."""
    stored = engine("wan21_t2v", models["t2v"], quantize="fp8_storage", dtype="bf16")
    bf16 = engine("wan21_t2v", models["t2v"], dtype="bf16").generate(request())
    frames = stored.generate(request())
    assert frames.shape == (9, 64, 64, 3) and frames.std() > 0
    assert np.abs(frames.astype(int) - bf16.astype(int)).mean() < 40  # close, not equal: fp8


def test_fp8_takes_the_bf16_linear_layers_its_kernels_can(tmp_path):
    """torchao's per-row fp8 asserts on any non-bf16 weight: Wan's fp32 time embedder stopped
    quantize=fp8 on the H200. fp8_layers keeps those (and sizes fp8 GEMMs cannot take) out."""
    from diffusers import WanTransformer3DModel

    from engine.diffusers.accel import fp8_layers

    path = tiny.save_wan_t2v(tmp_path / "wan16", head_dim=16)
    model = WanTransformer3DModel.from_pretrained(path / "transformer", torch_dtype=torch.bfloat16)
    chosen = fp8_layers(model)
    kept_fp32 = [n for n, m in model.named_modules()
                 if isinstance(m, torch.nn.Linear) and m.weight.dtype == torch.float32]
    assert kept_fp32 and not set(kept_fp32) & set(chosen)  # the time embedder stays fp32
    assert any(".attn1.to_q" in n for n in chosen) and any(".ffn." in n for n in chosen)
    assert fp8_layers(model.float()) == []  # fp32 model: nothing (the engine says set bf16)


def test_auto_attention_picks_the_fastest_exact_kernel_that_runs(monkeypatch):
    class Model:
        config = {"attention_head_dim": 128}

    works = {"_flash_3": "RuntimeError: needs sm90", "flash": None, "_native_cudnn": None}
    monkeypatch.setattr(attention, "probe", lambda name, dim, dtype, device: works[name])
    assert attention.choose("auto", Model(), "cuda", torch.bfloat16) == "flash"
    works["flash"] = "not installed"
    assert attention.choose("auto", Model(), "cuda", torch.bfloat16) == "_native_cudnn"
    assert attention.choose("auto", Model(), "cpu", torch.float32) == "native"
    assert attention.choose("sage", Model(), "cuda", torch.bfloat16) == "sage"  # as asked
    # auto never picks a pixel-changing kernel, so installing one never invalidates a cache.
    assert not any(attention.changes_pixels(b) for b in attention.EXACT_PREFERENCE)


def test_explicit_backend_that_is_not_installed_is_a_config_error(models):
    with pytest.raises(Exception, match="attention_backend='flash'"):
        engine("wan21_t2v", models["t2v"], attention_backend="flash").load()


def test_samplers_build_flow_schedulers_with_the_shift():
    from diffusers import EulerDiscreteScheduler, UniPCMultistepScheduler

    from engine.base import EngineError
    from engine.diffusers.samplers import scheduler_for

    unipc = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                    flow_shift=3.0)
    euler = scheduler_for(unipc, "euler", None, "wan21_t2v")
    assert type(euler).__name__ == "FlowMatchEulerDiscreteScheduler"
    assert euler.config.shift == 3.0  # the pipeline's shift carries over
    dpmpp = scheduler_for(unipc, "dpmpp", 8.0, "wan21_t2v")
    assert type(dpmpp).__name__ == "DPMSolverMultistepScheduler"
    assert dpmpp.config.flow_shift == 8.0 and dpmpp.config.algorithm_type == "dpmsolver++"
    assert scheduler_for(unipc, None, None, "wan21_t2v") is unipc
    with pytest.raises(EngineError, match="not a flow-matching scheduler"):
        scheduler_for(EulerDiscreteScheduler(), "euler", None, "svd")


def test_sampler_key_renders_and_changes_the_pixels(models):
    wan = engine("wan21_t2v", models["t2v"])
    unipc = wan.generate(request(params={"steps": 3}))
    euler = wan.generate(request(params={"steps": 3, "sampler": "euler"}))
    assert euler.shape == unipc.shape and not np.array_equal(euler, unipc)
    pipe = wan.pool._entries[wan.pool_key].value
    assert type(pipe.scheduler).__name__ == "UniPCMultistepScheduler"  # restored after the call


def test_offload_auto_fits_the_vram_budget():
    from engine.diffusers.accel import GIB, fit_offload

    # Wan 2.1 14B in bf16: transformer 28 GiB, UMT5-XXL 11 GiB, VAE 0.5 GiB.
    sizes = {"transformer": 28 * GIB, "text_encoder": 11 * GIB, "vae": GIB // 2}
    denoisers = ("transformer",)
    assert fit_offload(sizes, denoisers, "none", 80 * GIB)[0] == "none"
    assert fit_offload(sizes, denoisers, "none", 40 * GIB)[0] == "model"
    assert fit_offload(sizes, denoisers, "none", 24 * GIB)[0] == "group"
    # fp8 storage halves the transformer: it now fits a 24 GB card component by component.
    mode, why = fit_offload(sizes, denoisers, "fp8_storage", 24 * GIB)
    assert mode == "model" and "14.0 GiB" in why
    assert fit_offload(sizes, denoisers, "fp8_storage", 6 * GIB)[0] == "sequential"


def test_fullgraph_only_with_kernels_dynamo_can_trace():
    assert attention.traceable("auto") and attention.traceable("flash")
    assert attention.traceable("_native_cudnn") and attention.traceable(None)
    assert not attention.traceable("sage") and not attention.traceable("xformers")

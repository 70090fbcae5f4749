"""The diffusers engines on tiny random-weight pipelines saved with save_pretrained: loading
through engine.model, seeds, both experts, end frames, per-expert LoRA strengths, embeddings
memoised per prompt, the degrade ladder, and clear errors for wrong weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.base import CameraState, EngineError, LoraRef
from engine.diffusers.options import EngineConfigError
from engine.diffusers.model_pool import ModelPool
from engine.registry import get_engine
from tests.helpers import tiny_pipelines as tiny

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        "t2v": tiny.save_wan_t2v(root / "wan-t2v"),
        "i2v2": tiny.save_wan22_i2v(root / "wan22-i2v"),
        "vace": tiny.save_wan_vace(root / "wan-vace"),
        "cog": tiny.save_cogvideox(root / "cogvideox"),
        "lora": tiny.save_wan_lora(root / "lora", root / "wan22-i2v"),
    }


request = tiny.tiny_request


image = tiny.random_image


def engine(name: str, model, pool=None, **options):
    return get_engine(name, model=str(model), pool=pool or ModelPool(), **options)


def test_same_seed_same_pixels_and_progress(models):
    wan = engine("wan21_t2v", models["t2v"])
    steps = []
    first = wan.generate(request(), progress=lambda done, total: steps.append((done, total)))
    assert first.shape == (9, 64, 64, 3) and first.dtype == np.uint8
    assert steps == [(1, 2), (2, 2)]
    assert np.array_equal(first, wan.generate(request()))
    assert not np.array_equal(first, wan.generate(request(seed=4)))


def test_pipeline_loads_once_and_embeddings_are_memoised(models, monkeypatch):
    pool = ModelPool()
    wan = engine("wan21_t2v", models["t2v"], pool=pool)
    again = engine("wan21_t2v", models["t2v"], pool=pool)  # a second render in the process
    wan.generate(request())
    entry_key = wan.pool_key
    encode = type(pool._entries[entry_key].value).encode_prompt
    calls = []
    monkeypatch.setattr(type(pool._entries[entry_key].value), "encode_prompt",
                        lambda self, **kw: calls.append(kw["prompt"]) or encode(self, **kw))
    again.generate(request())                 # same prompt: memoised
    again.generate(request(prompt="the sea"))  # new prompt: encoded once
    again.generate(request(prompt="the sea", seed=9))
    assert pool.loads == {entry_key: 1}
    # (The pipeline's own call passes the embeddings through encode_prompt with prompt=None.)
    assert [c for c in calls if c is not None] == ["the sea"]


def test_identity_names_model_not_path(models):
    wan = engine("wan21_t2v", models["t2v"])
    ident = wan.identity()
    assert ident["engine"] == "wan21_t2v" and ident["model"] == "wan-t2v"
    assert str(models["t2v"]) not in repr(ident)
    assert ident["dtype"] == "fp32" and len(ident["revision"]) == 16


def spy_pipeline_calls(monkeypatch, pipeline_cls) -> dict:
    """The keyword arguments of the last call of `pipeline_cls` (patched on the class)."""
    seen: dict = {}
    original = pipeline_cls.__call__

    def spy(self, *args, **kwargs):
        seen.update(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pipeline_cls, "__call__", spy)
    return seen


def _count_calls(module, counter: list, name: str):
    return module.register_forward_hook(lambda *_: counter.append(name))


def test_two_experts_both_run_and_boundary_moves_the_switch(models):
    pool = ModelPool()
    wan = engine("wan22_i2v_a14b", models["i2v2"], pool=pool)
    wan.load()
    pipe = pool._entries[wan.pool_key].value
    calls: list[str] = []
    _count_calls(pipe.transformer, calls, "high")
    _count_calls(pipe.transformer_2, calls, "low")
    wan.generate(request(start_image=image(1), params={"steps": 4, "cfg": 1.0}))
    assert "high" in calls and "low" in calls
    calls.clear()
    wan.generate(request(start_image=image(1), params={"steps": 4, "cfg": 1.0, "boundary": 0.0}))
    assert set(calls) == {"high"}  # boundary 0: the high-noise expert does every step
    calls.clear()
    wan.generate(request(start_image=image(1), params={"steps": 4, "cfg": 1.0, "boundary": 1.0}))
    assert set(calls) == {"low"}
    assert pipe.config.boundary_ratio == 0.875  # restored after the call


def test_end_image_reaches_the_pipeline(models, monkeypatch):
    import diffusers

    wan = engine("wan22_i2v_a14b", models["i2v2"])
    seen = spy_pipeline_calls(monkeypatch, diffusers.WanImageToVideoPipeline)
    start, end = image(1), image(2)
    with_end = wan.generate(request(start_image=start, end_image=end))
    assert np.array_equal(np.asarray(seen["last_image"]), end)
    assert np.array_equal(np.asarray(seen["image"]), start)
    seen.clear()
    without = wan.generate(request(start_image=start))
    assert seen.get("last_image") is None
    assert not np.array_equal(with_end, without)  # the end frame conditions the video


def _lora_scalings(module, adapter: str) -> set[float]:
    from peft.tuners.lora import LoraLayer

    return {round(float(m.scaling[adapter]), 6) for m in module.modules()
            if isinstance(m, LoraLayer) and adapter in m.scaling}


def test_lora_strengths_apply_per_expert(models):
    pool = ModelPool()
    wan = engine("wan22_i2v_a14b", models["i2v2"], pool=pool)
    base = request(start_image=image(1), params={"steps": 2})
    plain = wan.generate(base)
    lora = str(models["lora"])
    high_only = wan.generate(request(start_image=image(1), params={"steps": 2},
                                     loras=(LoraRef(lora, 1.0, 0.0),)))
    pipe = pool._entries[wan.pool_key].value
    adapter = pool._entries[wan.pool_key].adapters[lora]
    assert _lora_scalings(pipe.transformer, adapter) == {1.0}
    assert _lora_scalings(pipe.transformer_2, adapter) == {0.0}
    assert not np.array_equal(plain, high_only)
    wan.generate(request(start_image=image(1), params={"steps": 2},
                         loras=(LoraRef(lora, 0.0, 0.7),)))
    assert _lora_scalings(pipe.transformer, adapter) == {0.0}
    assert _lora_scalings(pipe.transformer_2, adapter) == {0.7}
    # Without loras the adapters are off: the plain output comes back exactly.
    assert np.array_equal(plain, wan.generate(base))


def test_vace_uses_start_end_and_camera_guide(models, monkeypatch):
    import diffusers

    vace = engine("wan_vace", models["vace"])
    seen = spy_pipeline_calls(monkeypatch, diffusers.WanVACEPipeline)
    path = tuple(CameraState(pan_x=0.02 * i) for i in range(9))
    start, end = image(1), image(2)
    frames = vace.generate(request(start_image=start, end_image=end, camera=path))
    assert frames.shape == (9, 64, 64, 3)
    video, mask = seen["video"], seen["mask"]
    assert np.array_equal(np.asarray(video[0]), start) and np.array_equal(np.asarray(video[-1]), end)
    assert np.asarray(mask[0]).max() == 0 and np.asarray(mask[4]).min() == 255
    # The guide frames in between are the start image moved along the camera path.
    assert not np.array_equal(np.asarray(video[4]), start)
    assert "pans right" in tiny_prompt(vace, seen)


def tiny_prompt(engine_obj, seen) -> str:
    # The prompt reached the text encoder as embeddings; find its text in the memo.
    entry = engine_obj.pool._entries[engine_obj.pool_key]
    return " ".join(str(k[1]) for k in entry.embeddings)  # keys: ("text", prompt, ...)


def test_cogvideox_non_wan_family(models):
    cog = engine("cogvideox", models["cog"])
    frames = cog.generate(request(num_frames=9, params={"steps": 2}))
    assert frames.shape == (9, 64, 64, 3)
    with pytest.raises(EngineError, match="T2V|CogVideoXPipeline"):
        cog.generate(request(start_image=image(1)))


def test_wrong_weights_and_options_are_config_errors(models, tmp_path):
    with pytest.raises(EngineConfigError, match="holds a WanPipeline.*wan22_i2v_a14b"):
        engine("wan22_i2v_a14b", models["t2v"])
    with pytest.raises(EngineConfigError, match="model_index.json"):
        engine("wan21_t2v", tmp_path)
    with pytest.raises(EngineConfigError, match="no such folder"):
        engine("wan21_t2v", tmp_path / "missing")
    with pytest.raises(EngineConfigError, match="not in the local Hugging Face cache"):
        engine("wan21_t2v", "nobody-here/not-a-model")
    with pytest.raises(EngineConfigError, match="offload='fast'.*none \\| model"):
        engine("wan21_t2v", models["t2v"], offload="fast")
    with pytest.raises(EngineConfigError, match="did you mean 'vae_tiling'"):
        engine("wan21_t2v", models["t2v"], vae_tilling=True)
    with pytest.raises(EngineError, match="cannot do i2v"):
        engine("wan21_t2v", models["t2v"]).generate(request(start_image=image(1)))


def test_degrade_ladder_on_the_cpu(models):
    pool = ModelPool()
    wan = engine("wan21_t2v", models["t2v"], pool=pool)
    steps = []
    while (step := wan.degrade()) is not None:
        steps.append(step)
    assert steps == ["enabled VAE tiling", "halved the VAE decode chunk"]
    assert pool._entries[wan.pool_key].degraded == ["vae_tiling", "decode_chunks"]
    assert wan.generate(request()).shape == (9, 64, 64, 3)  # still renders


def test_step_cache_option_is_part_of_identity(models):
    plain = engine("wan21_t2v", models["t2v"])
    cached = engine("wan21_t2v", models["t2v"], step_cache="first_block",
                    step_cache_threshold=0.1)
    assert plain.identity() != cached.identity()
    assert cached.generate(request()).shape == (9, 64, 64, 3)


@pytest.fixture(scope="module")
def more_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("more-models")
    return {"ltx": tiny.save_ltx(root / "ltx"), "svd": tiny.save_svd(root / "svd"),
            "v2v": tiny.save_wan_v2v(root / "wan-v2v")}


def test_ltx_text_and_image_to_video_share_one_load(more_models):
    pool = ModelPool()
    ltx = engine("ltx", more_models["ltx"], pool=pool)
    assert ltx.generate(request(params={"steps": 2})).shape == (9, 64, 64, 3)
    assert ltx.generate(request(start_image=image(1), params={"steps": 2})).shape == (9, 64, 64, 3)
    entry = pool._entries[ltx.pool_key]
    assert list(entry.variants) == ["LTXImageToVideoPipeline"]  # from_pipe: same weights
    assert entry.variants["LTXImageToVideoPipeline"].transformer is entry.value.transformer
    assert pool.loads == {ltx.pool_key: 1}


def test_svd_image_to_video(more_models):
    svd = engine("svd", more_models["svd"])
    frames = svd.generate(request(num_frames=4, fps=7, start_image=image(1),
                                  params={"steps": 2}))
    assert frames.shape == (4, 64, 64, 3)
    with pytest.raises(EngineError, match="cannot do t2v"):
        svd.generate(request(num_frames=4))


def test_v2v_restyles_the_source_at_denoise_strength(more_models):
    v2v = engine("wan_v2v", more_models["v2v"])
    source = np.stack([image(i) for i in range(9)])
    light = v2v.generate(request(source_video=source, params={"steps": 4, "denoise": 0.3}))
    heavy = v2v.generate(request(source_video=source, params={"steps": 4, "denoise": 1.0}))
    assert light.shape == (9, 64, 64, 3)
    assert not np.array_equal(light, heavy)
    with pytest.raises(EngineError, match="source frames"):
        v2v.generate(request(source_video=source[:5]))


def test_v2v_warps_its_source_through_the_depth_for_2_5d_moves(more_models, monkeypatch):
    """2.5D moves on wan_v2v: each source frame is re-rendered along the camera path through
    the shot's depth (parallax), not the flat homography, before it is restyled."""
    import diffusers

    from engine.base import CameraState
    from engine.depth.warp import warp_along
    from engine.geometry import relative_homography, warp_frame

    seen: list[dict] = []
    original = diffusers.WanVideoToVideoPipeline.__call__
    monkeypatch.setattr(diffusers.WanVideoToVideoPipeline, "__call__",
                        lambda self, *a, **kw: seen.append(kw) or original(self, *a, **kw))
    v2v = engine("wan_v2v", more_models["v2v"])
    source = np.stack([image(i) for i in range(9)])
    near = np.zeros((64, 64), np.float32)
    near[16:48, 16:48] = 0.9  # a near square on a far wall
    path = tuple(CameraState(truck=0.03 * i) for i in range(9))
    v2v.generate(request(source_video=source, camera=path, depth=near,
                         params={"steps": 2, "denoise": 0.5}))
    video = [np.asarray(frame) for frame in seen[-1]["video"]]
    want = warp_along(list(source), path, near)
    assert all(np.array_equal(a, b) for a, b in zip(video, want))
    flat = warp_frame(source[-1], relative_homography(path[-1], path[0], 64, 64))
    assert not np.array_equal(video[-1], flat)  # the near square moved more than the wall


def test_v2v_loads_the_t2v_folder_the_readme_recommends(models):
    v2v = engine("wan_v2v", models["t2v"])  # a WanPipeline folder; v2v built with from_pipe
    source = np.stack([image(i) for i in range(9)])
    frames = v2v.generate(request(source_video=source, params={"steps": 2, "denoise": 0.5}))
    assert frames.shape == (9, 64, 64, 3)


def test_each_family_module_registers_its_engines_and_each_engine_has_its_config():
    """A diffusers family is one module in engine/diffusers/families/ (found by a scan, no list
    to edit) and one conf/engine/<name>.yaml per engine that inherits the shared options."""
    import pkgutil
    from pathlib import Path

    import yaml

    from engine.diffusers import families
    from engine.registry import available_engines, engine_spec

    declared = [info.name for info in pkgutil.iter_modules(families.__path__)
                if hasattr(__import__(f"{families.__name__}.{info.name}", fromlist=["x"]),
                           "ENGINES")]
    assert sorted(f.__name__.rsplit(".", 1)[1] for f in families.FAMILIES) == sorted(declared)
    conf = Path(__file__).resolve().parents[3] / "conf" / "engine"
    for family in families.FAMILIES:
        for cls in family.ENGINES:
            name = cls.spec.name
            assert name in available_engines() and engine_spec(name) is cls.spec
            config = yaml.safe_load((conf / f"{name}.yaml").read_text())
            assert config["name"] == name
            assert "_shared/diffusers@_here_" in config["defaults"], name

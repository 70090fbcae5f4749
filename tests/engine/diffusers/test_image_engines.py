"""The text-to-image engines (sdxl, sdxl_turbo, flux, sd35) on tiny random-weight pipelines saved
with save_pretrained and loaded through engine.model: stills of the requested size, seeds,
progress, LoRA-free defaults, option errors, video requests refused, the SDXL and FLUX
IP-Adapters (tiny random ones) carrying cast references; and VACE's reference_images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.base import EngineConfigError, EngineError
from engine.diffusers.model_pool import ModelPool
from engine.registry import engine_spec, get_engine
from tests.helpers import tiny_image_pipelines as tiny_images
from tests.helpers import tiny_pipelines as tiny

torch.set_num_threads(1)

still = tiny_images.image_request


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("image-models")
    sdxl = tiny_images.save_sdxl(root / "sdxl")
    flux = tiny_images.save_flux(root / "flux")
    return {
        "sdxl": sdxl,
        "flux": flux,
        "flux_ip_adapter": tiny_images.save_flux_ip_adapter(root / "flux-ip-adapter", flux),
        "sd35": tiny_images.save_sd35(root / "sd35"),
        "ip_adapter": tiny_images.save_sdxl_ip_adapter(root / "ip-adapter", sdxl),
        "vace": tiny.save_wan_vace(root / "wan-vace"),
    }


def engine(name: str, model, **options):
    # T5 reads 16 tokens here, not 256-512: the tiny models need no more.
    if name in ("flux", "sd35"):
        options.setdefault("max_sequence_length", 16)
    return get_engine(name, model=str(model), pool=ModelPool(), **options)


MODEL_OF = {"sdxl": "sdxl", "sdxl_turbo": "sdxl", "flux": "flux", "sd35": "sd35"}


@pytest.mark.parametrize("name", sorted(MODEL_OF))
def test_still_size_seed_and_progress(models, name):
    eng = engine(name, models[MODEL_OF[name]])
    steps = []
    first = eng.generate_image(still(), progress=lambda done, total: steps.append((done, total)))
    assert first.shape == (32, 32, 3) and first.dtype == np.uint8
    assert steps == [(1, 2), (2, 2)]
    assert np.array_equal(first, eng.generate_image(still()))
    assert not np.array_equal(first, eng.generate_image(still(seed=4)))
    wide = eng.generate_image(still(width=48, height=32))
    assert wide.shape == (32, 48, 3)


def test_specs_are_image_engines():
    for name, multiple in (("sdxl", 8), ("sdxl_turbo", 8), ("flux", 16), ("sd35", 16)):
        spec = engine_spec(name)
        assert spec.modes == {"t2i"} and not spec.makes_video and spec.makes_images
        assert spec.resolution_multiple == multiple
        assert {"steps", "cfg", "seed", "negative", "loras"} <= spec.honours
    # References only where an IP-Adapter is wired (SDXL) and on VACE.
    assert engine_spec("sdxl").max_references == 3 and engine_spec("flux").max_references == 3
    assert engine_spec("sd35").max_references == 0
    assert engine_spec("wan_vace").max_references == 3


def test_cfg_and_negative_change_the_still(models):
    eng = engine("sdxl", models["sdxl"])
    base = eng.generate_image(still(params={"steps": 2, "cfg": 5.0}))
    assert not np.array_equal(base, eng.generate_image(still(params={"steps": 2, "cfg": 1.0})))
    assert not np.array_equal(base, eng.generate_image(
        still(params={"steps": 2, "cfg": 5.0}, negative="blurry")))


def test_video_requests_and_bad_sizes_are_refused(models):
    eng = engine("sdxl", models["sdxl"])
    with pytest.raises(EngineError, match="makes stills.*image: {generate"):
        eng.generate(tiny.tiny_request())
    with pytest.raises(EngineError, match="multiple of 8"):
        eng.generate_image(still(width=36))
    with pytest.raises(EngineError, match="multiple of 16"):
        engine("flux", models["flux"]).generate_image(still(width=40))
    with pytest.raises(EngineError, match="at most 3"):
        eng.generate_image(still(reference_images=[tiny.random_image(i) for i in range(4)]))


def test_bad_options_are_config_errors(models, tmp_path):
    with pytest.raises(EngineConfigError, match="engine.options.offload"):
        engine("sdxl", models["sdxl"], offload="sideways")
    with pytest.raises(EngineConfigError, match="holds a StableDiffusionXLPipeline.*flux"):
        engine("flux", models["sdxl"])
    # ip_adapter only where it is wired; on sdxl each mistake names the key and the fix.
    with pytest.raises(EngineConfigError, match="ip_adapter: unknown option"):
        engine("sd35", models["sd35"], ip_adapter={"path": str(models["ip_adapter"])})
    with pytest.raises(EngineConfigError, match="ip_adapter.path is not set.*XLabs-AI"):
        engine("flux", models["flux"], ip_adapter={"scale": 0.5})
    with pytest.raises(EngineConfigError, match="ip_adapter.path is not set.*hf download"):
        engine("sdxl", models["sdxl"], ip_adapter={"scale": 0.5})
    with pytest.raises(EngineConfigError, match="ip_adapter.path=.*no such file"):
        engine("sdxl", models["sdxl"], ip_adapter={"path": str(tmp_path / "nope.safetensors")})
    folder = models["ip_adapter"].parent
    with pytest.raises(EngineConfigError, match="weight_name.*ip-adapter_tiny.safetensors"):
        engine("sdxl", models["sdxl"], ip_adapter={"path": str(folder)})
    with pytest.raises(EngineConfigError, match="ip_adapter.image_encoder=.*no CLIP image"):
        engine("sdxl", models["sdxl"], ip_adapter={"path": str(models["ip_adapter"]),
                                                   "image_encoder": str(tmp_path)})
    with pytest.raises(EngineConfigError, match="ip_adapter.scale"):
        engine("sdxl", models["sdxl"], ip_adapter={"path": str(models["ip_adapter"]),
                                                   "scale": "strong"})
    with pytest.raises(EngineConfigError, match="ip_adapter.wieght_name: unknown key"):
        engine("sdxl", models["sdxl"], ip_adapter={"path": str(models["ip_adapter"]),
                                                   "wieght_name": "x"})


def test_ip_adapter_references_steer_the_still(models):
    plain_engine = engine("sdxl", models["sdxl"])
    adapted = engine("sdxl", models["sdxl"], ip_adapter={"path": str(models["ip_adapter"]),
                                                         "scale": 1.0})
    assert adapted.identity()["ip_adapter"]["weights"] == "ip-adapter_tiny.safetensors"
    assert str(models["ip_adapter"]) not in repr(adapted.identity())
    assert_references_steer_the_still(plain_engine, adapted)


def assert_references_steer_the_still(plain_engine, adapted) -> None:
    """Without references the adapter runs at scale 0 (the text-only still, exactly); one or
    two references change the still, repeatably; an engine without an adapter ignores them."""
    plain = plain_engine.generate_image(still())
    assert np.array_equal(plain, adapted.generate_image(still()))
    red = np.zeros((40, 56, 3), np.uint8)
    red[..., 0] = 255
    with_red = adapted.generate_image(still(reference_images=[red]))
    assert with_red.shape == (32, 32, 3) and not np.array_equal(with_red, plain)
    assert np.array_equal(with_red, adapted.generate_image(still(reference_images=[red])))
    two = adapted.generate_image(still(reference_images=[red, tiny.random_image(1)]))
    assert not np.array_equal(two, with_red)
    assert np.array_equal(plain, plain_engine.generate_image(still(reference_images=[red])))


def test_flux_ip_adapter_references_steer_the_still(models):
    # XLabs' layout, read by diffusers' FluxIPAdapterMixin: the references reach the
    # transformer's double-stream blocks through the adapter's image tokens.
    plain_engine = engine("flux", models["flux"])
    adapted = engine("flux", models["flux"], ip_adapter={
        "path": str(models["flux_ip_adapter"]), "scale": 1.0})
    assert adapted.identity()["ip_adapter"]["weights"] == "ip_adapter.safetensors"
    assert adapted.identity() != plain_engine.identity()  # a different keyframe key
    assert_references_steer_the_still(plain_engine, adapted)


def spy_pipeline_calls(monkeypatch, pipeline_cls) -> dict:
    """The keyword arguments of the last call of `pipeline_cls` (patched on the class)."""
    seen: dict = {}
    original = pipeline_cls.__call__

    def spy(self, *args, **kwargs):
        seen.clear()
        seen.update(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pipeline_cls, "__call__", spy)
    return seen


def test_vace_reference_images_reach_the_pipeline(models, monkeypatch):
    import diffusers

    vace = engine("wan_vace", models["vace"])
    seen = spy_pipeline_calls(monkeypatch, diffusers.WanVACEPipeline)
    plain = vace.generate(tiny.tiny_request())
    assert "reference_images" not in seen
    refs = [tiny.random_image(5), np.full((48, 80, 3), 200, np.uint8)]
    with_refs = vace.generate(tiny.tiny_request(reference_images=refs))
    passed = seen["reference_images"]
    assert [np.asarray(img).shape for img in passed] == [(64, 64, 3), (48, 80, 3)]
    assert np.array_equal(np.asarray(passed[0]), refs[0])
    # The references are encoded into the latents the denoiser sees: the video changes, its
    # length does not (the pipeline drops the reference latents before decoding).
    assert with_refs.shape == plain.shape == (9, 64, 64, 3)
    assert not np.array_equal(with_refs, plain)
    assert np.array_equal(with_refs, vace.generate(tiny.tiny_request(reference_images=refs)))
    with pytest.raises(EngineError, match="4 reference images.*at most 3"):
        vace.generate(tiny.tiny_request(reference_images=[tiny.random_image(i)
                                                          for i in range(4)]))


def test_engines_without_references_ignore_them(models):
    # Validation warns about cast on such engines; a fallback must still take the request.
    eng = engine("sd35", models["sd35"])
    assert np.array_equal(eng.generate_image(still()),
                          eng.generate_image(still(reference_images=[tiny.random_image(1)])))

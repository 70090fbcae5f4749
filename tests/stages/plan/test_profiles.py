"""Render profiles (stages.plan.profiles): the precedence rule, `draft` with a tiny step-distilled
LoRA (exactly N steps, one forward each), the two-pass Wan 2.2 preset (10 + 10 steps, Euler),
`low_vram`'s engine options, and the errors that stop a render before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine.diffusers.model_pool import POOL
from flows.config.engines import engine_config_file
from flows.render import EXIT_INVALID, EXIT_OK, run
from flows.config.settings import RenderSettings
from stages.plan.profiles import Profile, ProfileChoice, effective, parse_profile, resolve_key
from stages.storyboard.schema import Shot, ShotDefaults
from tests.helpers import tiny_pipelines as tiny
from tests.helpers.synthetic import write_png

torch.set_num_threads(1)


def test_precedence_innermost_level_explicit_key_then_its_profile():
    draft = Profile("draft", params={"steps": 4, "cfg": 1.0})
    final = Profile("final", params={"steps": 40})
    choice = ProfileChoice({"draft": draft, "final": final})
    defaults = ShotDefaults(cfg=5.0, profile="final")
    shot = Shot(id="a", profile="draft", steps=6)
    levels = choice.levels(shot, defaults, "final")
    # The shot's explicit steps beat its own profile; its profile beats the defaults' cfg.
    assert resolve_key("steps", (None, shot, defaults), levels) == 6
    assert resolve_key("cfg", (None, shot, defaults), levels) == 1.0
    assert effective(levels) is draft
    # Without a shot profile, the defaults' explicit cfg beats the defaults' profile.
    plain = Shot(id="b")
    levels = choice.levels(plain, defaults, None)
    assert resolve_key("cfg", (None, plain, defaults), levels) == 5.0
    assert resolve_key("steps", (None, plain, defaults), levels) == 40
    # profile= on the command line replaces every storyboard profile; explicit keys still win.
    cli = ProfileChoice({"draft": draft, "final": final}, override="final")
    levels = cli.levels(shot, defaults, "draft")
    assert resolve_key("steps", (None, shot, defaults), levels) == 6
    assert resolve_key("cfg", (None, shot, defaults), levels) == 5.0
    assert effective(levels) is final


def test_lora_pairs_and_missing_lora():
    pair = parse_profile("draft", {"lora": "/m/high.safetensors", "lora_2": "/m/low.safetensors",
                                   "strength": 1.0, "strength_2": 0.8}, "engine.profiles.draft")
    assert [(l.strength, l.second) for l in pair.loras] == [(1.0, 0.0), (0.0, 0.8)]
    one = parse_profile("draft", {"lora": "/m/both.safetensors", "strength": 2.0},
                        "engine.profiles.draft")
    assert [(l.strength, l.second) for l in one.loras] == [(2.0, 2.0)]
    unset = parse_profile("draft", {"needs_lora": True, "params": {"steps": 4}},
                          "engine.profiles.draft")
    assert unset.missing == ("engine.profiles.draft.lora",)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("profile-models")
    i2v = tiny.save_wan22_i2v(root / "wan22-i2v", boundary_ratio=0.9)
    return {"i2v2": i2v, "lora": tiny.save_wan_lora(root / "lora", i2v)}


STORYBOARD = """
fps: 16
resolution: 64x64
{top}
shots:
  - id: a
    image: start.png
    prompt: "the keeper walks"
    frames: 9
{shot}
"""


def project(root: Path, top: str = "", shot: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_png(root / "start.png", 64, 64, seed=1)
    path = root / "ep.yaml"
    path.write_text(STORYBOARD.format(top=top, shot=shot))
    return path


def settings(path: Path, out: Path, model: Path, lora: Path | None = None,
             **kw) -> RenderSettings:
    config = engine_config_file("wan22_i2v_a14b")  # the shipped profiles
    config["model"] = str(model)
    config["profiles"]["draft"]["lora"] = None if lora is None else str(lora)
    base = dict(storyboard=str(path), output_dir=str(out), post=[], retry_delay=0.0,
                retries=0, engine=config)
    base.update(kw)
    return RenderSettings(**base)


def forward_counter(monkeypatch) -> dict[int, int]:
    from diffusers import WanTransformer3DModel

    calls: dict[int, int] = {}
    original = WanTransformer3DModel.forward

    def counted(self, *args, **kwargs):
        calls[id(self)] = calls.get(id(self), 0) + 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(WanTransformer3DModel, "forward", counted)
    return calls


def per_expert(calls: dict[int, int]) -> list[int]:
    pipe = next(e.value for e in POOL._entries.values() if hasattr(e.value, "transformer_2"))
    return [calls.get(id(pipe.transformer), 0), calls.get(id(pipe.transformer_2), 0)]


def manifest(out: Path) -> dict:
    return json.loads((out / "ep" / "manifest.json").read_text())


@pytest.mark.usefixtures("prefect_harness")
def test_draft_runs_n_steps_one_forward_each_with_the_lora(tmp_path, models, monkeypatch):
    POOL.clear()
    calls = forward_counter(monkeypatch)
    path = project(tmp_path / "p", top="profile: draft")
    out = tmp_path / "renders"
    assert run(settings(path, out, models["i2v2"], lora=models["lora"])) == EXIT_OK
    # 4 steps, CFG off: one transformer forward per step, split 2 + 2 between the experts.
    assert sum(per_expert(calls)) == 4 and all(n > 0 for n in per_expert(calls))
    entry = next(iter(POOL._entries.values()))
    assert list(entry.adapters) == [str(models["lora"])]  # the distilled LoRA is attached
    segment = manifest(out)["shots"][0]["segments"][0]
    assert segment["profile"] == "draft"


@pytest.mark.usefixtures("prefect_harness")
def test_two_pass_preset_switches_experts_after_step_ten_with_euler(tmp_path, models,
                                                                    monkeypatch):
    from diffusers import FlowMatchEulerDiscreteScheduler

    POOL.clear()
    calls = forward_counter(monkeypatch)
    steps: list[float] = []
    original = FlowMatchEulerDiscreteScheduler.step
    monkeypatch.setattr(FlowMatchEulerDiscreteScheduler, "step",
                        lambda self, out, t, *a, **k: steps.append(float(t)) or
                        original(self, out, t, *a, **k))
    path = project(tmp_path / "p", shot="    profile: two_pass")
    assert run(settings(path, tmp_path / "renders", models["i2v2"])) == EXIT_OK
    assert len(steps) == 20  # Euler ran every step
    # CFG on (3.5): two forwards a step; the high-noise expert ran the first ten steps.
    assert per_expert(calls) == [20, 20]


@pytest.mark.usefixtures("prefect_harness")
def test_low_vram_sets_engine_options_and_explicit_options_win(tmp_path, models):
    POOL.clear()
    path = project(tmp_path / "p", top="profile: low_vram")
    out = tmp_path / "renders"
    assert run(settings(path, out, models["i2v2"])) == EXIT_OK
    runtime = manifest(out)["engine_runtime"]
    assert runtime["quantize"] == "fp8_storage" and runtime["offload"] == "none"  # CPU
    assert any("offload=auto chose none" in n for n in runtime["notes"])
    config = settings(path, tmp_path / "r2", models["i2v2"]).engine
    config["options"]["quantize"] = "none"
    explicit = settings(path, tmp_path / "r2", models["i2v2"], engine=config,
                        engine_cli_options=["quantize"])
    assert run(explicit) == EXIT_OK
    assert json.loads((tmp_path / "r2" / "ep" / "manifest.json").read_text())[
        "engine_runtime"]["quantize"] == "none"


def test_draft_without_its_lora_stops_before_any_work(tmp_path, models, capsys):
    path = project(tmp_path / "p", shot="    profile: draft")
    out = tmp_path / "renders"
    assert run(settings(path, out, models["i2v2"])) == EXIT_INVALID
    err = capsys.readouterr().err
    assert "engine.profiles.draft.lora" in err
    assert not out.exists()
    missing = tmp_path / "nowhere.safetensors"
    assert run(settings(path, out, models["i2v2"], lora=missing)) == EXIT_INVALID
    assert "nowhere.safetensors not found" in capsys.readouterr().err


def test_profile_errors_name_the_key(tmp_path, models, capsys):
    path = project(tmp_path / "p", shot="    profile: draf")
    assert run(settings(path, tmp_path / "r", models["i2v2"])) == EXIT_INVALID
    err = capsys.readouterr().err
    assert "shots[0].profile" in err and "did you mean 'draft'" in err
    path = project(tmp_path / "q", shot="    profile: low_vram")
    assert run(settings(path, tmp_path / "r", models["i2v2"])) == EXIT_INVALID
    assert "whole render" in capsys.readouterr().err
    path = project(tmp_path / "s")
    assert run(settings(path, tmp_path / "r", models["i2v2"], profile="fast")) == EXIT_INVALID
    assert "unknown profile 'fast'" in capsys.readouterr().err


def test_engine_configs_read_outside_the_command_match_hydras_composition():
    """Fallback engines and `flows.models` read conf/engine/NAME.yaml themselves: they must see
    the options the engine YAMLs share through `defaults:` exactly as the command line does."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from flows.config.settings import CONF_DIR

    names = sorted(p.stem for p in (Path(CONF_DIR) / "engine").glob("*.yaml"))
    assert len(names) >= 14
    with initialize_config_dir(config_dir=str(Path(CONF_DIR).resolve()), version_base=None):
        for name in names:
            composed = compose(config_name="config", overrides=[f"engine={name}"]).engine
            assert engine_config_file(name) == OmegaConf.to_container(composed, resolve=False), name
    assert engine_config_file("wan21_t2v")["options"]["attention_backend"] == "auto"  # shared

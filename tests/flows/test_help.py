"""`--help` of the CLIs: generated from the models and what is installed, not Hydra's stock text."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.registry import available_engines
from flows.config.help import asks_for_help, enhance_help, render_help, series_help
from flows.config.settings import post_presets
from stages.post.registry import STAGES, load_builtin_stages
from stages.storyboard.schema import GenerationKeys, Segment, Shot, Storyboard

ROOT = Path(__file__).resolve().parents[2]


def test_render_help_lists_keys_overrides_presets_and_engines():
    text = render_help()
    for model in (Storyboard, Shot, Segment):
        for name, field in model.model_fields.items():
            if model is Segment and name in GenerationKeys.model_fields:
                continue  # listed by name: the shot's rows describe them
            assert f"    {name} " in text, name
            # One source of truth: the field's docstring, as the JSON Schema has it.
            assert " ".join(field.description.split())[:40] in " ".join(text.split()), name
    for override in ("storyboard=NAME", "engine=NAME", "profile=", "shots=", "dry_run=",
                     "post=PRESET", "output.crf=", "output.codec=", "keyframes.engine=",
                     "output_dir=", "cache_dir="):
        assert override in text, override
    for preset in post_presets():
        assert f"  {preset} " in text or text.count(f"\n  {preset}\n"), preset
    for engine in available_engines():
        assert f"  {engine} " in text, engine
    load_builtin_stages()
    for stage in STAGES:
        assert f"  {stage} " in text, stage
    assert "enhance:" not in text and "Configuration groups" not in text  # not Hydra's text


def test_series_and_enhance_help():
    series = series_help()
    assert "series=NAME" in series and "demo" in series and "series.episodes" in series
    assert "shots" in series and "svi_pro" in series and "preview" in series
    enhance = enhance_help()
    for key in ("input=", "output=", "post=", "stages=", "crf="):
        assert key in enhance, key
    assert "svi_pro" in enhance and "upscale" in enhance and "interpolate2x" in enhance


def test_help_flags():
    assert asks_for_help(["prog", "--help"]) and asks_for_help(["prog", "x=1", "-h"])
    assert not asks_for_help(["prog", "--hydra-help"]) and not asks_for_help(["prog", "help=1"])


@pytest.mark.parametrize("module", ["flows.render", "flows.enhance"])
def test_the_cli_prints_it_before_hydra(module):
    done = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, text=True,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: python -m {module}")
    assert "svi_pro" in done.stdout and "Hydra" not in done.stdout.split("\n")[0]

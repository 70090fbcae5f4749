"""Render settings' defaults live in conf/config.yaml only: RenderSettings built in Python (as
tests and deployments do) gets the same values the CLI composes through Hydra."""

from __future__ import annotations

import dataclasses

from hydra import compose, initialize_config_dir

from flows.config.compose import settings_from_config
from flows.config.settings import CONF_DIR, RenderSettings

# Set per run, not defaulted: the storyboard and cwd are given; the groups' (engine, post,
# output) composed contents and what the command line named are compared separately.
NOT_DEFAULTS = {"storyboard", "cwd", "engine", "post", "output", "engine_cli_options",
                "post_override", "variant"}


def test_dataclass_defaults_equal_the_composed_config():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["storyboard=ep01"])
    composed = settings_from_config(cfg, "/somewhere", []).to_dict()
    built = RenderSettings(storyboard="ep01", cwd="/somewhere").to_dict()
    fields = {f.name for f in dataclasses.fields(RenderSettings)} - NOT_DEFAULTS
    assert fields  # every other field has a conf/config.yaml key
    assert {k: built[k] for k in fields} == {k: composed[k] for k in fields}
    assert built["engine"]["name"] == composed["engine"]["name"] == "preview"
    assert built["post"] == composed["post"] == []

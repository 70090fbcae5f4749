"""prefect.yaml as `python -m flows.serve` reads it, and submit()'s checks before queueing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flows.serve import ServeConfigError, read_deployments, runner_deployments
from flows.config.settings import ConfigInvalid, PROJECT_ROOT
from flows.submit import _store_submitted, submit
from stages.storyboard.problems import StoryboardInvalid


def test_prefect_yaml_deploys_render_and_a_nightly_series():
    specs = {d["name"]: d for d in read_deployments()}
    render, series = specs["default"], specs["demo"]
    assert render["entrypoint"] == "flows/pipeline/flow.py:render_flow"
    assert series["entrypoint"] == "flows/deploy/series_flow.py:series_flow"
    assert (render["work_pool"]["work_queue_name"], series["work_pool"]["work_queue_name"]) == \
        ("gpu", "series")
    (nightly,) = series["schedules"]
    assert nightly["cron"] == "0 2 * * *" and nightly["timezone"]
    assert nightly["parameters"]["series"] == "demo"
    assert series["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
    # No machine paths: workers record the checkout folder when `prefect deploy` runs.
    assert "pull" not in yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())


def test_serve_builds_the_same_deployments_with_schedule_and_limit():
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy

    render, series = runner_deployments(read_deployments())
    assert (render.name, render.flow_name, series.name, series.flow_name) == \
        ("default", "render", "demo", "series")
    (schedule,) = series.schedules
    assert schedule.schedule.cron == "0 2 * * *"
    assert schedule.schedule.timezone == "Europe/Berlin"
    assert schedule.parameters["render_deployment"] == "render/default"
    assert series.concurrency_limit == 1
    assert series.concurrency_options.collision_strategy == ConcurrencyLimitStrategy.ENQUEUE
    assert series.parameters == {"series": "demo", "render_deployment": "render/default"}
    with pytest.raises(ServeConfigError, match="no such deployment"):
        runner_deployments(read_deployments(), only=["nightly"])


def test_submit_checks_a_dict_storyboard_before_queueing(tmp_path):
    with pytest.raises(StoryboardInvalid):
        submit({"shots": []}, [f"storage.root={tmp_path}"])
    good = {"fps": 8, "resolution": "64x64", "shots": [{"id": "a", "prompt": "x", "frames": 5}]}
    with pytest.raises(ConfigInvalid, match="needs storage.root="):
        submit(good, [])
    with pytest.raises(ConfigInvalid, match="no such file"):
        submit(tmp_path / "missing.yaml")
    stored = Path(_store_submitted(yaml.safe_dump(good), "promo", [f"storage.root={tmp_path}"]))
    assert stored == tmp_path / "submitted" / "promo.yaml"
    assert yaml.safe_load(stored.read_text()) == good

"""Series config, composing flow parameters without argv, and a series rendered in-process."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from flows.config.compose import compose_settings, settings_from_config
from flows.config.settings import ConfigInvalid, post_presets
from flows.deploy.publish import PublishConfig
from flows.deploy.series_flow import SeriesFailed, series_flow
from flows.deploy.series_plan import load_series
from flows.deploy.series_summary import artifact_key
from flows.series import EXIT_INVALID, run_series
from stages.media.video_io import video_info

TINY = """
fps: 8
resolution: 64x64
seed: {seed}
shots:
  - id: one
    prompt: "{prompt}"
    frames: 5
    camera: {{zoom: 0.1}}
  - id: two
    start: chain
    prompt: "and then"
    frames: 5
"""


def storyboards(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sa.yaml").write_text(TINY.format(seed=1, prompt="episode a"))
    (folder / "sb.yaml").write_text(TINY.format(seed=2, prompt="episode b"))
    (folder / "broken.yaml").write_text("shots: []\n")
    return folder


def test_compose_gives_the_settings_the_cli_gives():
    from hydra import compose, initialize_config_dir

    from flows.config.settings import CONF_DIR

    overrides = ["fps=12", "post=interpolate4x", "output.crf=30", "resolution=256x144",
                 "storage.root=/shared/rf"]
    composed = compose_settings("ep01", overrides, cwd="/somewhere")
    # What `python -m flows.render storyboard=ep01 <overrides>` builds from Hydra's own config.
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["storyboard=ep01", *overrides])
    assert composed.to_dict() == settings_from_config(cfg, "/somewhere", overrides).to_dict()
    assert composed.post_override and composed.resolution == "256x144"
    assert composed.storage["root"] == "/shared/rf"


def test_compose_rejects_bad_parameters_with_the_fix():
    with pytest.raises(ConfigInvalid, match="list of Hydra overrides"):
        compose_settings("ep01", "fps=12")  # a string, not a list
    with pytest.raises(ConfigInvalid, match="Could not override 'nope'"):
        compose_settings("ep01", ["nope=1"])
    with pytest.raises(ConfigInvalid, match="both given"):
        compose_settings("ep01", ["storyboard=ep02"])


def test_demo_series_lists_its_episodes_and_shares_its_defaults(tmp_path):
    plan = load_series("demo", [f"storyboards_dir={storyboards(tmp_path / 'sb')}"])
    assert [e.name for e in plan.episodes] == ["ep01", "ep02"]
    assert plan.render_deployment is None and not plan.publish.enabled
    for episode in plan.episodes:
        assert episode.settings.engine["name"] == "preview"
        assert episode.settings.output["crf"] == 20  # the series' shared default
        assert episode.settings.post == post_presets()["interpolate2x"]  # the series' post
        assert not episode.settings.post_override  # a storyboard's own post: still wins
    # A glob over the storyboard folders, and the command line beating the series.
    globbed = load_series("demo", [f"storyboards_dir={tmp_path / 'sb'}", "series.episodes=[s?]",
                                   "output.crf=25"], render_deployment="render/default")
    assert [e.name for e in globbed.episodes] == ["sa", "sb"]
    assert globbed.episodes[0].settings.output["crf"] == 25
    assert globbed.render_deployment == "render/default"


def test_series_config_errors_name_the_key_and_the_fix(tmp_path):
    with pytest.raises(ConfigInvalid, match="known series: .*demo"):
        load_series("nope")
    with pytest.raises(ConfigInvalid, match=r"'zz\*' matches no storyboard"):
        load_series("demo", ["series.episodes=[zz*]"])
    with pytest.raises(ConfigInvalid, match="render_deployment='render'"):
        load_series("demo", ["series.render_deployment=render"])
    with pytest.raises(ConfigInvalid, match="argument list"):
        PublishConfig.of({"command": "rclone copy {video} remote:"})
    with pytest.raises(ConfigInvalid, match="unknown key"):
        PublishConfig.of({"dirr": "/x"})
    assert run_series("nope", [], str(tmp_path)) == EXIT_INVALID


@pytest.mark.usefixtures("prefect_harness")
def test_series_renders_publishes_and_reruns_from_the_cache(tmp_path, capsys):
    from prefect.client.orchestration import get_client

    sb = storyboards(tmp_path / "sb")
    out, pub = tmp_path / "renders", tmp_path / "published"
    # No shell: a '$(...)' in an argument is just characters of a file name.
    command = [sys.executable, "-c", "import shutil, sys; shutil.copyfile(sys.argv[1], "
               "sys.argv[2])", "{video}", str(pub / "{episode} $(touch pwned).mp4")]
    overrides = [f"storyboards_dir={sb}", f"output_dir={out}", "post=none",
                 f"series.publish.dir={pub}",
                 "series.publish.command=" + json.dumps(command).replace('"', "'")]

    with pytest.raises(SeriesFailed, match="broken"):
        series_flow(series="demo", overrides=[*overrides, "series.episodes=[sa,broken,sb]"])
    first = capsys.readouterr().out
    assert "3 episodes" in first and "2 rendered, 0 cached, 1 failed" in first
    for name in ("sa", "sb"):
        manifest = json.loads((out / name / "manifest.json").read_text())
        assert video_info(out / name / f"{name}.mp4").frames == manifest["frames"]
        assert (pub / f"{name}.mp4").read_bytes() == (out / name / f"{name}.mp4").read_bytes()
        assert (pub / f"{name}_contact_sheet.png").is_file()
        assert (pub / f"{name} $(touch pwned).mp4").is_file()
    assert not list(tmp_path.rglob("pwned"))

    summary = series_flow(series="demo", overrides=[*overrides, "series.episodes=[sa,sb]"])
    assert (summary["rendered"], summary["cached"], summary["failed"]) == (0, 2, 0)
    assert {e["publish"] for e in summary["episodes"]} == {"already published"}
    assert all(e["segments_rendered"] == 0 for e in summary["episodes"])

    with get_client(sync_client=True) as client:
        artifacts = [a for a in client.read_artifacts() if a.key == artifact_key("demo")]
    latest = max(artifacts, key=lambda a: a.created).data
    assert "0 rendered, 2 cached, 0 failed" in latest
    assert "| sa | cached | 0 / 2 |" in latest and "data:image/jpeg;base64," in latest

    # The Prefect UI shows the series run and its episode runs by name, tagged with the series.
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=20)
    by_name = {r.name: r for r in reversed(runs)}  # the latest run of each name
    assert {"series demo", "demo/sa", "demo/sb"} <= set(by_name), sorted(by_name)
    assert {"reelforge", "series:demo"} <= set(by_name["series demo"].tags)
    assert {"reelforge", "series:demo", "storyboard:sa", "engine:preview"} <= set(
        by_name["demo/sa"].tags)

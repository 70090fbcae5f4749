"""audio.reactive through `python -m flows.render` on the preview engine: dry_run's lines, the
manifest's schedules, the graded episode, and exit status 2 for audio that does not decode."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import yaml

from flows.config.settings import RenderSettings
from flows.pipeline.prepare import prepare, print_plan
from flows.render import EXIT_INVALID, EXIT_OK, run
from stages.media.video_io import read_frames
from tests.stages.audio.synth import kick_track

FPS = 16
BEATS = [0.25 + 0.5 * i for i in range(6)]
BOARD = {
    "fps": FPS, "resolution": "96x64", "seed": 7,
    "audio": {"path": "music.wav", "reactive": [
        {"param": "zoom", "source": "beats", "amount": 0.04, "decay": "0.25s"},
        {"param": "flow_shift", "source": "onsets", "amount": 2},
        {"param": "hue", "source": "bass", "amount": 30}]},
    "shots": [{"id": "a", "prompt": "one", "frames": 25, "flow_shift": 3.0},
              {"id": "b", "prompt": "two", "frames": 25}],
}


def settings(tmp_path, **more) -> RenderSettings:
    return RenderSettings(storyboard=str(tmp_path / "ep.yaml"), output_dir=str(tmp_path / "out"),
                          engine={"name": "preview", "params": {}}, post=[], retry_delay=0.0,
                          retries=0, **more)


def write(tmp_path, board=BOARD, audio=True) -> None:
    (tmp_path / "ep.yaml").write_text(yaml.safe_dump(board, sort_keys=False))
    if audio:
        kick_track(tmp_path / "music.wav", BEATS, 3.4)


def test_dry_run_prints_tempo_beats_and_mappings(tmp_path):
    write(tmp_path)
    assert run(settings(tmp_path, dry_run=True)) == EXIT_OK
    text = io.StringIO()
    print_plan(prepare(settings(tmp_path, dry_run=True)), file=text)
    out = text.getvalue()
    assert "tempo 1" in out and "(6 beats)" in out
    assert "audio: zoom += 0.04 on 6 beats, decay 0.25 s, per frame; peak 0.04 at 0.2" in out
    assert "audio: flow_shift += 2 on 6 onsets" in out and "audio: hue += 30 x bass" in out


def test_audio_that_is_not_audio_exits_2_naming_the_file_and_key(tmp_path, capsys):
    write(tmp_path, audio=False)
    (tmp_path / "music.wav").write_bytes(b"RIFF but no audio" * 50)
    assert run(settings(tmp_path, dry_run=True)) == EXIT_INVALID
    err = capsys.readouterr().err
    assert "ep.yaml" in err and "audio.path" in err and "music.wav" in err


@pytest.mark.usefixtures("prefect_harness")
def test_render_records_the_schedules_and_grades_the_episode(tmp_path):
    write(tmp_path)
    assert run(settings(tmp_path)) == EXIT_OK
    folder = tmp_path / "out" / "ep"
    manifest = json.loads((folder / "manifest.json").read_text())
    reactive = manifest["audio_reactive"]
    assert len(reactive["analysis"]["beats"]) == len(BEATS)
    assert np.abs(np.asarray(reactive["analysis"]["beats"]) - BEATS).max() < 0.5 / FPS
    zoom = reactive["shots"]["a"]["camera"]["zoom"] + reactive["shots"]["b"]["camera"]["zoom"]
    peaks = [i for i in range(1, len(zoom) - 1)
             if zoom[i] > zoom[i - 1] and zoom[i] >= zoom[i + 1] and zoom[i] > 0.02]
    assert peaks == [round(b * FPS) for b in BEATS if b * FPS < len(zoom)]
    segments = {sid: shot["segments"] for sid, shot in reactive["shots"].items()}
    assert 3.0 < segments["a"][0]["flow_shift"] < 5.0 and len(segments["b"]) == 1
    hue = reactive["color"]["hue"]
    assert len(hue) == manifest["frames"] and max(hue) > 20
    # The grade reached the episode: on a beat frame its colours differ from the shot's own.
    beat = round(BEATS[1] * FPS)
    episode = list(read_frames(folder / manifest["video"]))
    shot = list(read_frames(folder / "shots" / "a.mp4"))
    quiet = round(BEATS[1] * FPS) - 2
    turned = np.abs(episode[beat].astype(int) - shot[beat].astype(int)).mean()
    still = np.abs(episode[quiet].astype(int) - shot[quiet].astype(int)).mean()
    assert turned > 3 * max(still, 1.0)

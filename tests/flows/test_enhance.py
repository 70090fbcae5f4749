"""`python -m flows.enhance`: presets and inline stages on a small generated clip, the input's
audio, and errors (exit 2, nothing written) versus failures while running (exit 1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flows.enhance import EXIT_FAILED, EXIT_INVALID, EXIT_OK, EnhanceSettings, run
from stages.render.audio import AudioTrack, mux_audio, probe
from stages.media.video_io import read_frames, video_info, write_video
from tests.helpers.post_media import panning, write_wav

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clip(tmp_path) -> Path:
    """20 frames of 64x48 at 16 fps (H.264), with a soundtrack."""
    silent = tmp_path / "silent.mp4"
    write_video(silent, panning(20), 16, codec="h264", crf=10)
    return mux_audio(silent, AudioTrack(write_wav(tmp_path / "t.wav", 2.0)), tmp_path / "in.mp4",
                     20 / 16)


def enhance(tmp_path, clip, output="out.mp4", **kw) -> tuple[int, Path]:
    settings = EnhanceSettings(input=str(clip), output=output, cwd=str(tmp_path), **kw)
    return run(settings), tmp_path / output


def test_svi_pro_end_to_end_keeps_the_soundtrack(tmp_path, clip, capsys):
    rc, out = enhance(tmp_path, clip, chain=["svi_pro"])
    assert rc == EXIT_OK
    info = video_info(out)
    assert (info.width, info.height, info.frames) == (128, 96, 39)
    assert info.fps == pytest.approx(32)
    assert len(probe(out).audio) == 1  # 39 frames at 32 fps ~ 20 at 16: the audio still fits
    text = capsys.readouterr().out
    assert "scene_detect -> smooth -> upscale -> interpolate -> smooth" in text
    assert not list(tmp_path.glob(".out.mp4*"))  # no temp files left


def test_inline_stages_lossless_output_and_dropped_audio(tmp_path, clip, capsys):
    rc, out = enhance(tmp_path, clip, "out.mkv",
                      chain=[{"stage": "loop", "mode": "pingpong", "join": 0}])
    assert rc == EXIT_OK
    frames = list(read_frames(out))
    assert len(frames) == 39 and np.array_equal(frames[0], frames[-1])
    assert probe(out).audio == []
    assert "audio is dropped" in capsys.readouterr().out


def test_audio_path_replaces_the_soundtrack(tmp_path, clip):
    wav = write_wav(tmp_path / "music.wav", 10.0, freq=220)
    rc, out = enhance(tmp_path, clip, chain=["slowmo2x"], audio=str(wav))
    assert rc == EXIT_OK
    assert video_info(out).frames == 39 and len(probe(out).audio) == 1


@pytest.mark.parametrize("kw, message", [
    (dict(input="missing.mp4"), "no such file"),
    (dict(chain=["svi_pr"]), "did you mean 'svi_pro'"),
    (dict(chain=[{"stage": "smooth", "window": 4}]), "window"),
    (dict(codec="ffv1"), "needs a .mkv output"),
    (dict(output="out.avi"), "unsupported extension"),
    (dict(chain=[{"stage": "interpolate", "method": "rife", "model": "w.pkl"}]), "not found"),
])
def test_bad_settings_exit_2_and_write_nothing(tmp_path, clip, capsys, kw, message):
    kw = {"input": str(clip), "output": "out.mp4", **kw}
    rc = run(EnhanceSettings(cwd=str(tmp_path), **kw))
    err = capsys.readouterr().err
    assert rc == EXIT_INVALID, err
    assert message in err and "Nothing was written" in err
    assert not (tmp_path / kw["output"]).exists()


def test_unusable_weights_are_an_invalid_setting(tmp_path, clip, capsys):
    (tmp_path / "w.pkl").write_text("not weights")
    rc, out = enhance(tmp_path, clip, chain=[{"stage": "interpolate", "method": "rife",
                                              "model": "w.pkl"}])
    assert rc == EXIT_INVALID and "cannot read model file" in capsys.readouterr().err
    assert not out.exists()


def test_a_failure_while_running_exits_1(tmp_path, clip, capsys, monkeypatch):
    from stages.post.registry import STAGES, StageDef
    from stages.post.upscale.stage import UpscaleParams

    def broken(stream, fps, params, digests):
        for i, item in enumerate(stream):
            if i == 5:
                raise RuntimeError("stage broke at frame 5")
            yield item

    monkeypatch.setitem(STAGES, "upscale",
                        StageDef(UpscaleParams, broken,
                                 size_out=lambda w, h, p: (w, h)))
    rc, out = enhance(tmp_path, clip, chain=[{"stage": "upscale"}])
    assert rc == EXIT_FAILED and "stage broke at frame 5" in capsys.readouterr().err
    assert not out.exists()


def test_cli(tmp_path, clip):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ok = subprocess.run([sys.executable, "-m", "flows.enhance", f"input={clip}",
                         "output=cli.mp4", "post=interpolate2x"], cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert video_info(tmp_path / "cli.mp4").frames == 39
    bad = subprocess.run([sys.executable, "-m", "flows.enhance", f"input={clip}",
                          "output=bad.mp4", "post=interpolate3x", "bogus=1"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Nothing was written" in bad.stderr
    assert not (tmp_path / "bad.mp4").exists()

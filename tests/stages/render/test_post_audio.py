"""Soundtracks: the ffmpeg mux with a generated WAV, the storyboard's `audio:` key, and a render
whose episode carries the track (with an interpolated transition and an upscale in the chain)."""

from __future__ import annotations

import dataclasses
import subprocess

import numpy as np
import pytest

from engine.preview import PREVIEW_SPEC, PreviewEngine
from engine.registry import register, unregister
from flows.render import EXIT_OK, run
from flows.config.settings import RenderSettings
from stages.render.audio import AudioTrack, audio_filter, mux_audio, probe
from stages.storyboard.problems import StoryboardInvalid
from stages.storyboard.validate import ValidateOptions, validate_storyboard
from stages.media.video_io import ffmpeg_exe, video_info, write_video
from tests.helpers.post_media import panning, write_wav


def decoded_audio(path) -> np.ndarray:
    """The first audio stream as mono 8 kHz float samples (ffmpeg to raw PCM on stdout)."""
    proc = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a:0",
                           "-ac", "1", "-ar", "8000", "-f", "f32le", "-"],
                          capture_output=True, check=True)
    return np.frombuffer(proc.stdout, np.float32)


def test_mux_adds_a_faded_track_cut_to_the_video(tmp_path):
    video = tmp_path / "v.mp4"
    write_video(video, panning(32), 16, codec="h264")  # 2 s
    wav = write_wav(tmp_path / "tone.wav", 5.0)
    out = mux_audio(video, AudioTrack(wav, fade_in=0.5, fade_out=0.5), tmp_path / "out.mp4", 2.0)
    streams = probe(out)
    assert len(streams.audio) == 1 and "aac" in streams.audio[0] and len(streams.video) == 1
    assert video_info(out).frames == 32
    samples = decoded_audio(out)
    assert abs(len(samples) / 8000 - 2.0) < 0.1
    rms = lambda a: float(np.sqrt(np.mean(a * a)))  # noqa: E731
    start, middle, end = samples[:400], samples[7000:9000], samples[-400:]
    assert rms(start) < 0.5 * rms(middle) and rms(end) < 0.5 * rms(middle)  # faded in and out


def test_offset_delays_or_skips():
    assert audio_filter(AudioTrack(None, offset=1.5), 4).startswith("adelay=delays=1500:all=1")
    assert audio_filter(AudioTrack(None, offset=-2), 4).startswith("atrim=start=2.000000")
    assert "afade=t=out:st=3.000000:d=1.000000" in audio_filter(AudioTrack(None, fade_out=1), 4)


STORYBOARD = """
fps: 16
resolution: 64x64
shots:
  - id: a
    prompt: "first"
    frames: 9
    transition: {type: interpolated, duration: 0.25s}
  - id: b
    prompt: "second"
    frames: 9
audio: {path: tone.wav, offset: 0.2s, fade_in: 0.3s, fade_out: 0.5s}
post: [{stage: upscale, factor: 2}]
"""


@pytest.fixture
def preview_engine():
    register("test_post_preview", dataclasses.replace(PREVIEW_SPEC, name="test_post_preview"),
             PreviewEngine)
    yield "test_post_preview"
    unregister("test_post_preview")


def test_audio_key_is_validated(tmp_path, preview_engine):
    path = tmp_path / "ep.yaml"
    path.write_text(STORYBOARD)
    spec = dataclasses.replace(PREVIEW_SPEC, name=preview_engine)
    with pytest.raises(StoryboardInvalid) as info:
        validate_storyboard(path, spec, ValidateOptions())
    assert "audio.path" in str(info.value) and "not found" in str(info.value)
    (tmp_path / "tone.wav").write_text("not audio")
    with pytest.raises(StoryboardInvalid, match="audio"):
        validate_storyboard(path, spec, ValidateOptions())
    write_wav(tmp_path / "tone.wav", 1.0)
    vs = validate_storyboard(path, spec, ValidateOptions())
    assert vs.audio.offset == pytest.approx(0.2) and vs.audio.fade_out == pytest.approx(0.5)
    path.write_text(STORYBOARD.replace("fade_in: 0.3s", "fade_inn: 0.3s"))
    with pytest.raises(StoryboardInvalid, match="did you mean 'fade_in'"):
        validate_storyboard(path, spec, ValidateOptions())


@pytest.mark.usefixtures("prefect_harness")
def test_render_muxes_the_soundtrack(tmp_path, preview_engine):
    project = tmp_path / "project"
    project.mkdir()
    (project / "ep.yaml").write_text(STORYBOARD)
    write_wav(project / "tone.wav", 3.0)
    settings = RenderSettings(storyboard=str(project / "ep.yaml"),
                              output_dir=str(tmp_path / "renders"),
                              engine={"name": preview_engine, "params": {}}, retry_delay=0.0)
    assert run(settings) == EXIT_OK
    episode = tmp_path / "renders" / "ep" / "ep.mp4"
    streams = probe(episode)
    assert len(streams.audio) == 1
    info = video_info(episode)
    # Two 9-frame shots overlapped by a 4-frame interpolated transition, upscaled 2x.
    assert (info.width, info.height, info.frames) == (128, 128, 14)
    assert abs(len(decoded_audio(episode)) / 8000 - 14 / 16) < 0.1

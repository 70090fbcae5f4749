"""Soundtrack analysis on synthetic audio whose beats are placed: detection error, decoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stages.audio.analysis import AudioDecodeError, analyse, decode
from stages.plan.keys import file_sha256
from tests.stages.audio.synth import kick_track

FPS = 16
BEATS = [0.25 + 0.5 * i for i in range(8)]  # 120 BPM


@pytest.fixture(scope="module")
def track(tmp_path_factory) -> Path:
    return kick_track(tmp_path_factory.mktemp("audio") / "music.wav", BEATS, 4.5)


def test_placed_beats_are_found_within_one_frame(track):
    analysis = analyse(track, file_sha256(track))
    assert len(analysis.beats) == len(BEATS)
    errors = np.abs(np.asarray(analysis.beats) - BEATS)
    assert errors.max() < 1 / FPS / 2, errors  # on the nearest frame, at 16 fps
    assert errors.max() < 0.015, errors  # measured: within 7 ms (hop 11.6 ms)
    assert analysis.tempo == pytest.approx(120, abs=3)
    onsets = np.asarray(analysis.onsets)
    assert len(onsets) == len(BEATS) and np.abs(onsets - BEATS).max() < 0.015


def test_envelopes_are_normalised_and_follow_the_kicks(track):
    analysis = analyse(track, file_sha256(track))
    for name in ("bass", "mid", "treble", "loudness"):
        values = np.asarray(analysis.envelopes[name])
        assert values.min() >= 0 and values.max() <= 1
    bass = analysis.envelope_at("bass", np.asarray([0.30, 0.70]))
    assert bass[0] > 0.5 > bass[1]  # just after a kick vs. just before the next one


def test_the_analysis_is_cached_by_the_audio_bytes(track, tmp_path):
    sha = file_sha256(track)
    first = analyse(track, sha, tmp_path)
    from stages.audio import analysis as module
    from stages.store.cache import CacheStore

    # A cache entry like every other (so `python -m flows.cache` lists and prunes it).
    entry = CacheStore(tmp_path).get(module.KIND, first.key)
    assert entry is not None and (entry.path / module.FILE).is_file()

    module._MEMO.clear()  # the next call reads the JSON file instead of analysing
    assert analyse(Path("/nonexistent.wav"), sha, tmp_path) == first


def test_a_file_that_is_not_audio_does_not_decode(tmp_path):
    bad = tmp_path / "music.wav"
    bad.write_bytes(b"this is no audio" * 100)
    with pytest.raises(AudioDecodeError, match="music.wav"):
        decode(bad)

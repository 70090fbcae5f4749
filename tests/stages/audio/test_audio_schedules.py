"""Audio-reactive schedules in the plan: zoom peaks on beat frames, flow_shift per segment,
colour curves, keys, and the validation of `audio.reactive`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stages.audio.schedules import envelope
from stages.post.audio_color import grade
from stages.storyboard.problems import StoryboardInvalid
from tests.helpers.boards import plan_from, write_board
from tests.stages.audio.synth import kick_track

FPS = 16
BEATS = [0.25 + 0.5 * i for i in range(8)]
ZOOM = {"param": "zoom", "source": "beats", "amount": 0.04, "decay": "0.25s"}
FLOW = {"param": "flow_shift", "source": "onsets", "amount": 2}
HUE = {"param": "hue", "source": "bass", "amount": 8}
SHOTS = [{"id": "a", "prompt": "x", "duration": "2s", "flow_shift": 3.0},
         {"id": "b", "prompt": "y", "duration": "2s", "camera": {"zoom": 0.1}}]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("board")
    kick_track(directory / "music.wav", BEATS, 4.5)
    return directory


def board(folder: Path, reactive, shots=SHOTS, name="ep", **audio):
    return write_board(folder, shots, name=name, fps=FPS,
                       audio={"path": "music.wav", **audio,
                              **({"reactive": reactive} if reactive else {})})


def zoom_series(plan) -> list[float]:
    """The episode's zoom per generation frame (shots are cut back to back)."""
    out = []
    for shot in plan.shots:
        for job in shot.segments:
            out += [c.zoom for c in job.camera]
    return out


def test_zoom_peaks_on_the_beat_frames_and_adds_to_the_storyboard_move(folder):
    plain = plan_from(board(folder, None, name="plain"))
    plan = plan_from(board(folder, [ZOOM, FLOW, HUE]))
    added = np.asarray(zoom_series(plan)) - np.asarray(zoom_series(plain))
    assert added.max() == pytest.approx(0.04, abs=0.002) and added.min() >= 0
    peaks = [i for i in range(1, len(added) - 1)
             if added[i] > added[i - 1] and added[i] >= added[i + 1] and added[i] > 0.02]
    beat_frames = [round(b * FPS) for b in BEATS if b * FPS < len(added)]
    assert peaks == beat_frames
    # After a beat, the impulse decays exponentially with the time constant `decay`.
    first = beat_frames[0]
    assert added[first + 4] / added[first] == pytest.approx(np.exp(-4 / FPS / 0.25), rel=0.05)
    # The manifest's per-frame record is what was added.
    recorded = plan.reactive.shots["a"]["camera"]["zoom"]
    assert recorded == pytest.approx(list(added[:len(recorded)]), abs=1e-4)


def test_flow_shift_is_the_segments_base_plus_the_mean_envelope(folder):
    plan = plan_from(board(folder, [ZOOM, FLOW, HUE]))
    analysis, reactive = plan.reactive.analysis, plan.reactive
    mapping = reactive.of("generation")[0]
    for shot, base in (("a", 3.0), ("b", 3.0)):  # b: no flow_shift anywhere -> nominal 3
        job = next(s for s in plan.shots if s.id == shot).segments[0]
        times = reactive.starts[shot] + np.arange(job.frames) / FPS
        expected = base + 2 * envelope(analysis, mapping, times, 0.5 / FPS).mean()
        assert job.params["flow_shift"] == pytest.approx(expected, abs=1e-3)
        assert 3.2 < job.params["flow_shift"] < 4.0  # 4 onsets in 2 s, decaying over 0.25 s
    assert any("flow_shift is set nowhere" in line for line in reactive.summary())


def test_colour_curves_follow_the_bass_and_the_grade_turns_hue(folder):
    plan = plan_from(board(folder, [HUE]))
    curve = np.asarray(plan.reactive.color(64)["hue"])
    assert 6 < curve.max() <= 8  # sampled at 16 fps, near the envelope's peak of 1
    assert curve[round(BEATS[0] * FPS)] > 4 and curve[round(BEATS[1] * FPS) - 2] < 1
    image = np.zeros((4, 4, 3), np.uint8)
    image[..., 0] = 200
    assert (grade(image) == image).all()
    assert grade(image, hue=120.0)[0, 0].argmax() == 1  # red turned towards green
    assert grade(image, exposure=1.0)[0, 0, 0] > 200


def test_keys_change_only_with_reactive_mappings(folder):
    plain = plan_from(board(folder, None, name="plain"))
    again = plan_from(board(folder, None, name="plain"))
    assert plain.reactive is None and plain.key == again.key
    reactive = plan_from(board(folder, [ZOOM], name="zoomed"))
    other = plan_from(board(folder, [{**ZOOM, "amount": 0.05}], name="zoomed"))
    assert {j.key for j in reactive.segments()}.isdisjoint({j.key for j in plain.segments()})
    assert reactive.key != other.key and reactive.key != plain.key
    # offset moves the schedule: the audio is delayed, so the first peak comes later
    delayed = plan_from(board(folder, [ZOOM], name="late", offset="0.5s"))
    first_peak = next(i for i, z in enumerate(zoom_series(delayed)) if z > 0.02)
    assert first_peak == round((BEATS[0] + 0.5) * FPS)


def test_dry_run_summary_names_tempo_beats_and_each_mapping(folder):
    lines = plan_from(board(folder, [ZOOM, FLOW, HUE])).reactive.summary()
    assert "tempo 120" in lines[0] and "(8 beats)" in lines[0]
    shown = [float(t) for t in lines[0].split("beats at ")[1].split(" (")[0].split(", ")]
    assert np.abs(np.asarray(shown) - BEATS).max() <= 0.015
    assert any(line.startswith("audio: zoom += 0.04 on 8 beats, decay 0.25 s") for line in lines)
    assert any("hue += 8 x bass" in line for line in lines)


def problems(path: Path) -> str:
    with pytest.raises(StoryboardInvalid) as info:
        plan_from(path)
    return str(info.value)


def test_audio_that_does_not_decode_is_a_validation_error(tmp_path):
    (tmp_path / "music.wav").write_bytes(b"not audio at all" * 64)
    text = problems(board(tmp_path, [ZOOM]))
    assert "ep.yaml" in text and "audio.path" in text and "music.wav" in text


@pytest.mark.parametrize("mapping, words", [
    ({**ZOOM, "param": "zom"}, ["audio.reactive[0]", "'zom'", "did you mean 'zoom'"]),
    ({**ZOOM, "source": "beat"}, ["audio.reactive[0].source", "beat"]),
    ({**ZOOM, "decay": "0s"}, ["audio.reactive[0].decay", "longer than 0s"]),
    ({**ZOOM, "amount": 50}, ["audio.reactive[0]", "amount=50", "out of range"]),
    ({**HUE, "amount": 400}, ["audio.reactive[0]", "out of range [-180, 180]"]),
    ({**ZOOM, "param": "dolly"}, ["audio.reactive[0].param", "'dolly'", "no shot has `depth:`"]),
])
def test_bad_mappings_are_named_with_their_key_path(folder, mapping, words):
    text = problems(board(folder, [mapping], name="bad"))
    for word in words:
        assert word in text, (word, text)


def test_shot_starts_follow_crossfades_and_chained_shots(folder):
    shots = [{"id": "a", "prompt": "x", "frames": 33,
              "transition": {"type": "crossfade", "duration": "0.5s"}},
             {"id": "b", "prompt": "y", "frames": 17, "start": "chain"}]
    plan = plan_from(board(folder, [ZOOM], shots=shots, name="faded"))
    reactive = plan.reactive
    episode_frames = sum(s.frames for s in plan.shots)
    assert reactive.starts == {"a": 0.0, "b": pytest.approx((33 - 8) / FPS)}
    b = next(s for s in plan.shots if s.id == "b")
    series = reactive.shots["b"]["camera"]["zoom"]
    assert len(series) == b.frames == 16  # the frame shared with shot a is not recorded
    # b's frame k plays at episode frame 25 + k: the beats there land on the same frames
    beats_in_b = [round(t * FPS) - 25 for t in BEATS if 25 <= round(t * FPS) < 25 + b.frames]
    peaks = [i for i in range(1, len(series) - 1)
             if series[i] > series[i - 1] and series[i] >= series[i + 1] and series[i] > 0.02]
    assert peaks == beats_in_b and episode_frames == 33 + 16


def test_shot_starts_make_room_for_generated_transitions(folder):
    """A generated transition's clip plays between the two shots: the next shot starts after
    it, at the episode frame the assembled plan puts it on."""
    shots = [{"id": "a", "prompt": "x", "frames": 17,
              "transition": {"type": "generated", "duration": "0.5s"}},
             {"id": "b", "prompt": "y", "frames": 17}]
    plan = plan_from(board(folder, [ZOOM], shots=shots, name="bridged"))
    bridge = next(s for s in plan.shots if s.bridge)
    assert bridge.frames > 0
    assert plan.reactive.starts == {"a": 0.0, "b": pytest.approx((17 + bridge.frames) / FPS)}

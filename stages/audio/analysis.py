"""Soundtrack analysis with librosa: tempo, beat and onset times, band energies and loudness.

Decoding goes through soundfile (WAV, FLAC, OGG, MP3 with libsndfile >= 1.1) and falls back to
the bundled ffmpeg for anything else (AAC/M4A), so nothing needs a system ffmpeg and nothing
downloads. Results are cached by the audio bytes' digest plus the analysis settings: in this
process, and as a JSON file under `cache_dir` when one is given, so a re-plan never re-analyses.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from stages.media.ffmpeg import ffmpeg_exe
from stages.plan.keys import content_key
from stages.store.cache import CacheStore

SAMPLE_RATE = 22050
HOP = 256  # analysis frames of 11.6 ms at 22050 Hz: well inside one video frame
# A beat moves to the attack of the onset nearest to it within this window: the beat tracker
# places beats on peaks of the onset envelope, a hop or more after the attack one hears.
BEAT_SNAP_S = 0.07
# A beat the tracker extrapolates into silence (quieter than this below the loudest) is dropped.
SILENT_DB = -40.0
N_FFT = 2048
BANDS: dict[str, tuple[float, float]] = {
    "bass": (20.0, 250.0), "mid": (250.0, 2000.0), "treble": (2000.0, SAMPLE_RATE / 2)}
# Loudness maps this many dB below the track's loudest moment to 0, the loudest to 1.
LOUDNESS_RANGE_DB = 60.0
# Part of every analysis key: bump when the analysis changes what it returns.
ANALYSIS_VERSION = 1


class AudioDecodeError(ValueError):
    """The file is not audio this machine can decode."""


@dataclass(frozen=True)
class AudioAnalysis:
    """What the schedules need from a soundtrack; times in seconds of the audio file."""

    duration: float
    tempo: float  # beats per minute (0 when no beat was found)
    beats: tuple[float, ...]
    onsets: tuple[float, ...]
    hop_s: float  # spacing of the envelope samples, the first at 0 s
    envelopes: dict[str, tuple[float, ...]]  # bass, mid, treble, loudness: 0..1
    key: str = ""  # digest of the audio bytes and the analysis settings

    def envelope_at(self, name: str, times: np.ndarray) -> np.ndarray:
        """The 0..1 envelope at `times` (linear between samples, 0 outside the track)."""
        values = np.asarray(self.envelopes[name], np.float64)
        grid = np.arange(len(values)) * self.hop_s
        return np.interp(times, grid, values, left=0.0, right=0.0)


def analysis_key(sha256: str) -> str:
    return content_key("audio_analysis", {
        "sha256": sha256, "version": ANALYSIS_VERSION, "sr": SAMPLE_RATE, "hop": HOP,
        "n_fft": N_FFT, "bands": BANDS, "loudness_db": LOUDNESS_RANGE_DB})


def decode(path: Path) -> np.ndarray:
    """Mono float32 samples at SAMPLE_RATE; AudioDecodeError when the file is not audio."""
    import soundfile

    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        samples = data.mean(axis=1)
    except (RuntimeError, soundfile.LibsndfileError, TypeError, ValueError):
        samples, rate = _decode_ffmpeg(path), SAMPLE_RATE
    if samples.size == 0:
        raise AudioDecodeError(f"{path.name} holds no audio samples")
    if rate != SAMPLE_RATE:
        import librosa

        samples = librosa.resample(samples, orig_sr=rate, target_sr=SAMPLE_RATE)
    return np.ascontiguousarray(samples, np.float32)


def _decode_ffmpeg(path: Path) -> np.ndarray:
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path),
         "-vn", "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "f32le", "-"],
        stdin=subprocess.DEVNULL, capture_output=True, check=False)
    if proc.returncode != 0 or not proc.stdout:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise AudioDecodeError(f"{path.name} is not an audio file that can be decoded"
                               + (f" ({err[-1]})" if err else ""))
    return np.frombuffer(proc.stdout, np.float32)


def _analyse_samples(y: np.ndarray, key: str) -> AudioAnalysis:
    import librosa

    sr = SAMPLE_RATE
    tempo, beats = librosa.beat.beat_track(y=y, sr=sr, hop_length=HOP, units="time",
                                           trim=False)
    # Backtracked: each onset at the start of its attack (the energy minimum before the peak).
    onsets = librosa.onset.onset_detect(y=y, sr=sr, hop_length=HOP, units="time",
                                        backtrack=True)
    power = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP)) ** 2
    freqs = librosa.fft_frequencies(sr=sr, n_fft=N_FFT)
    envelopes = {}
    for name, (low, high) in BANDS.items():
        energy = power[(freqs >= low) & (freqs < high)].sum(axis=0)
        envelopes[name] = _normalised(np.sqrt(energy))
    rms = librosa.feature.rms(y=y, frame_length=N_FFT, hop_length=HOP)[0]
    db = 20.0 * np.log10(np.maximum(rms, 1e-10) / max(float(rms.max()), 1e-10))
    envelopes["loudness"] = np.clip(1.0 + db / LOUDNESS_RANGE_DB, 0.0, 1.0)
    beats = _snapped_beats(np.asarray(beats, np.float64), np.asarray(onsets, np.float64), db)
    return AudioAnalysis(
        duration=len(y) / sr, tempo=float(np.atleast_1d(tempo)[0]),
        beats=tuple(round(float(b), 4) for b in beats),
        onsets=tuple(round(float(o), 4) for o in onsets), hop_s=HOP / sr,
        envelopes={k: tuple(round(float(v), 4) for v in e) for k, e in envelopes.items()},
        key=key)


def _snapped_beats(beats: np.ndarray, onsets: np.ndarray, db: np.ndarray) -> np.ndarray:
    """Beats moved to their nearest onset's attack (within BEAT_SNAP_S); beats in silence
    (extrapolated past the music's end or before its start) dropped."""
    out = []
    for beat in beats:
        if onsets.size:
            nearest = onsets[np.argmin(np.abs(onsets - beat))]
            if abs(nearest - beat) <= BEAT_SNAP_S:
                beat = nearest
        frame = min(int(round(beat * SAMPLE_RATE / HOP)), len(db) - 1)
        if db.size and db[max(frame, 0)] >= SILENT_DB:
            out.append(beat)
    return np.unique(np.asarray(out, np.float64))


def _normalised(values: np.ndarray) -> np.ndarray:
    """0..1 by the track's 99th percentile, so one spike does not flatten the rest."""
    top = float(np.percentile(values, 99)) if values.size else 0.0
    return np.clip(values / top, 0.0, 1.0) if top > 1e-12 else np.zeros_like(values)


_MEMO: dict[str, AudioAnalysis] = {}


def analyse(path: Path, sha256: str, cache_dir: Path | None = None) -> AudioAnalysis:
    """The analysis of the audio file at `path` (whose bytes hash to `sha256`), cached."""
    key = analysis_key(sha256)
    if key in _MEMO:
        if cache_dir is not None and not CacheStore(cache_dir).has(KIND, key):
            _write_cached(cache_dir, _MEMO[key])
        return _MEMO[key]
    cached = _read_cached(cache_dir, key)
    if cached is None:
        cached = _analyse_samples(decode(Path(path)), key)
        _write_cached(cache_dir, cached)
    _MEMO[key] = cached
    return cached


KIND = "audio_analysis"  # its cache kind: python -m flows.cache lists and prunes it
FILE = "analysis.json"


def _read_cached(cache_dir: Path | None, key: str) -> AudioAnalysis | None:
    if cache_dir is None:
        return None
    try:
        entry = CacheStore(cache_dir).get(KIND, key)
        if entry is None:
            return None
        data = json.loads((entry.path / FILE).read_text(encoding="utf-8"))
        data["beats"], data["onsets"] = tuple(data["beats"]), tuple(data["onsets"])
        data["envelopes"] = {k: tuple(v) for k, v in data["envelopes"].items()}
        return AudioAnalysis(**data) if data.get("key") == key else None
    except (OSError, ValueError, TypeError, KeyError):
        return None  # absent or damaged: analyse again


def _write_cached(cache_dir: Path | None, analysis: AudioAnalysis) -> None:
    if cache_dir is None:
        return
    try:
        with CacheStore(cache_dir).put(KIND, analysis.key, {"tempo": round(analysis.tempo, 2),
                                                            "seconds": analysis.duration}) as tmp:
            (tmp / FILE).write_text(json.dumps(asdict(analysis)), encoding="utf-8")
    except (OSError, RuntimeError):
        pass  # a read-only or full cache only costs a re-analysis next time

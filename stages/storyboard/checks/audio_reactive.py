"""The check of `audio.reactive`: the soundtrack must decode, and is analysed once here (the
planner reads the analysis from the validated storyboard; stages.audio.schedules)."""

from __future__ import annotations

from pathlib import Path

from stages.audio.analysis import AudioAnalysis, AudioDecodeError, analyse
from stages.render.audio import AudioTrack
from stages.storyboard.checks.shot import Checker
from stages.storyboard.schema import Audio, Storyboard
from stages.storyboard.schema.camera import DEPTH_CAMERA_KEYS


def reactive_analysis(checker: Checker, audio: Audio | None, track: AudioTrack | None,
                      cache_dir: Path | None = None) -> AudioAnalysis | None:
    """The analysis of the soundtrack when it has reactive mappings, else None. A file that does
    not decode is reported at `audio.path` (a missing or unreadable one already was)."""
    if audio is None or not audio.reactive or track is None:
        return None
    try:
        return analyse(track.path, track.sha256, cache_dir)
    except (AudioDecodeError, OSError, ValueError) as exc:
        checker.add(("audio", "path"), f"{audio.path!r} cannot be analysed for `reactive`: "
                                       f"{exc}; use a WAV, FLAC, OGG or MP3 file")
        return None


def depth_mapping_problems(checker: Checker, model: Storyboard) -> None:
    """A mapping to a 3D camera value (dolly, orbit, ...) moves only shots with `depth:`: an
    error when no shot has one (the mapping would do nothing), else a warning naming the shots
    it leaves still."""
    audio = model.audio
    if audio is None or not audio.reactive:
        return
    flat = [shot.id for shot in model.shots if getattr(shot, "depth", None) is None]
    for index, mapping in enumerate(audio.reactive):
        if mapping.param not in DEPTH_CAMERA_KEYS or not flat:
            continue
        if len(flat) == len(model.shots):
            checker.add(("audio", "reactive", index, "param"),
                        f"{mapping.param!r} is a 3D camera move and no shot has `depth:`; give "
                        f"the shots a depth map (depth: FILE or depth: estimate) or map to a 2D "
                        f"value (zoom, pan_x, pan_y, rotate, tilt)")
        else:
            checker.warnings.append(
                f"audio.reactive[{index}]: {mapping.param!r} needs depth: shots "
                f"{', '.join(flat)} have no `depth:` and will not take it")

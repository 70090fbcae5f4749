"""Soundtracks: mux an audio file into a finished video with ffmpeg (argument lists, no shell).

Storyboard: `audio: {path: music.wav, offset: 0s, fade_in: 1s, fade_out: 2s, volume: 1.0}` at the
top level. `offset` follows ffmpeg's -itsoffset convention: positive delays the track (silence
first), negative skips the track's first seconds. The track is cut (or padded with silence) to
the video's length, faded in where it starts and out at the video's end, and encoded as AAC; the
video stream is copied, never re-encoded.

The bundled ffmpeg has no ffprobe, so stream facts come from `ffmpeg -i`'s header on stderr.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from stages.media.atomic import atomic_path
from stages.media.ffmpeg import ffmpeg_exe

_STREAM_RE = re.compile(r"^\s*Stream #\d+:\d+.*?: (Audio|Video): (.*)$", re.M)
_DURATION_RE = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class AudioTrack:
    path: Path  # absolute
    offset: float = 0.0
    fade_in: float = 0.0
    fade_out: float = 0.0
    volume: float = 1.0
    sha256: str = ""  # content digest: part of the episode's key instead of the path

    def key_dict(self) -> dict:
        return {"sha256": self.sha256, "offset": self.offset, "fade_in": self.fade_in,
                "fade_out": self.fade_out, "volume": self.volume}


@dataclass(frozen=True)
class MediaStreams:
    audio: list[str]  # one description per audio stream ("pcm_s16le, 44100 Hz, mono, ...")
    video: list[str]
    duration_s: float | None


def probe(path: Path | str) -> MediaStreams:
    """The audio and video streams of a media file, from `ffmpeg -i`'s header."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"media file not found: {path}")
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
                          stdin=subprocess.DEVNULL, capture_output=True, check=False)
    header = proc.stderr.decode("utf-8", "replace")
    if "Invalid data found" in header or "could not find codec" in header.lower():
        raise ValueError(f"{path} is not a media file ffmpeg can read")
    streams = _STREAM_RE.findall(header)
    m = _DURATION_RE.search(header)
    duration = (int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))) if m else None
    return MediaStreams([d for kind, d in streams if kind == "Audio"],
                        [d for kind, d in streams if kind == "Video"], duration)


def audio_filter(track: AudioTrack, duration: float) -> str:
    """The ffmpeg filter chain for the track: offset, volume, fades, cut to `duration`."""
    parts = []
    if track.offset > 0:
        parts.append(f"adelay=delays={round(track.offset * 1000)}:all=1")
    elif track.offset < 0:
        parts.append(f"atrim=start={-track.offset:.6f}")
        parts.append("asetpts=PTS-STARTPTS")
    if track.volume != 1.0:
        parts.append(f"volume={track.volume:.6f}")
    parts.append("apad")  # a track shorter than the video ends in silence, not early
    parts.append(f"atrim=end={duration:.6f}")
    if track.fade_in > 0:
        start = max(track.offset, 0.0)
        parts.append(f"afade=t=in:st={start:.6f}:d={track.fade_in:.6f}")
    if track.fade_out > 0:
        fade = min(track.fade_out, duration)
        parts.append(f"afade=t=out:st={duration - fade:.6f}:d={fade:.6f}")
    return ",".join(parts)


def mux_audio(video: Path, track: AudioTrack, out: Path, duration: float,
              bitrate: str = "192k") -> Path:
    """Write `video` with `track` as its soundtrack to `out` (atomically); video is copied."""
    video, out = Path(video), Path(out)
    if not track.path.is_file():
        raise FileNotFoundError(f"audio file not found: {track.path}")
    if duration <= 0:
        raise ValueError(f"video duration must be > 0 to add audio, got {duration}")
    with atomic_path(out) as tmp:
        args = [
            ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-i", str(video), "-i", str(track.path),
            "-filter_complex", f"[1:a:0]{audio_filter(track, duration)}[a]",
            "-map", "0:v:0", "-map", "[a]", "-c:v", "copy", "-c:a", "aac", "-b:a", bitrate,
            "-t", f"{duration:.6f}",
        ]
        if out.suffix.lower() in (".mp4", ".mov", ".m4v"):
            args += ["-movflags", "+faststart"]
        args += ["-f", _muxer(out), str(tmp)]
        proc = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, check=False)
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()[-2000:]
            raise RuntimeError(f"adding audio {track.path.name} to {video.name} failed "
                               f"(ffmpeg status {proc.returncode}): {err}")
    return out


def copy_audio(source: Path, video: Path, out: Path, bitrate: str = "192k") -> Path:
    """`video` with the first audio stream of `source`, written to `out`: the video stream is
    copied; the audio is copied into Matroska (which holds any codec) and encoded as AAC for
    MP4/MOV (which cannot hold PCM and friends)."""
    out = Path(out)
    audio = ["-c:a", "copy"] if _muxer(out) == "matroska" else ["-c:a", "aac", "-b:a", bitrate]
    with atomic_path(out) as tmp:
        args = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                "-i", str(video), "-i", str(source), "-map", "0:v:0", "-map", "1:a:0",
                "-c:v", "copy", *audio, "-shortest", "-f", _muxer(out), str(tmp)]
        proc = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, check=False)
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()[-2000:]
            raise RuntimeError(f"copying the audio of {Path(source).name} failed (ffmpeg "
                               f"status {proc.returncode}): {err}")
    return Path(out)


def _muxer(path: Path) -> str:
    return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska",
            ".webm": "webm"}.get(path.suffix.lower(), "mp4")

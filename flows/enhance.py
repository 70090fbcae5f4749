"""`python -m flows.enhance input=clip.mp4 output=out.mp4 post=svi_pro`: run a post chain on an
existing video, with the same stages (and conf/post/ presets) a render uses.

Frames stream from the decoder through the chain into the encoder; memory stays flat whatever the
video's length. The output is written atomically: a failed run leaves nothing at `output`.

Exit status: 0 written; 2 invalid command line, preset, stage parameter or input (nothing
written); 1 the chain or the encoder failed while running (a short message; `--debug` or
REELFORGE_DEBUG=1 adds the traceback); 130 Ctrl-C; 143 SIGTERM. Nothing is left at `output`.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from flows.config.settings import post_presets
from flows.runtime.hydra_cli import EXIT_FAILED, EXIT_INVALID, EXIT_OK, hydra_exit_code, job_status
from stages.store.temp_names import temp_sibling
from stages.render.audio import AudioTrack, copy_audio, mux_audio, probe
from stages.plan.keys import file_sha256
from stages.post.chain import (
    PostStep,
    chain_fps,
    chain_frames_out,
    chain_size,
    chain_warnings,
    load_models,
    resolve_post_chain,
    run_post_chain,
)
from stages.media.video_io import VideoInfo, VideoWriter, read_frames, video_info

OUTPUT_CODECS = {".mp4": "h264", ".mov": "h264", ".m4v": "h264", ".mkv": "ffv1"}

_exit_codes: list[int] = []


class EnhanceInvalid(ValueError):
    """A bad command line, preset, stage parameter or input; nothing was written."""


@dataclass
class EnhanceSettings:
    input: str
    output: str
    chain: list[Any] = field(default_factory=list)  # preset items and/or {stage: ...} mappings
    cwd: str = "."
    codec: str | None = None
    crf: int = 18
    preset: str = "medium"
    fps: float | None = None
    audio: str = "keep"  # keep | none | PATH

    def path(self, value: str) -> Path:
        return (Path(self.cwd) / value).expanduser().resolve()


@dataclass
class EnhanceJob:
    settings: EnhanceSettings
    source: Path
    target: Path
    info: VideoInfo
    fps: float
    steps: list[PostStep]
    codec: str
    frames_out: int
    fps_out: float
    size_out: tuple[int, int]
    audio: AudioTrack | Path | None  # a soundtrack to mux, the input to copy audio from, or none
    warnings: list[str] = field(default_factory=list)


def prepare(settings: EnhanceSettings) -> EnhanceJob:
    """Check everything before a frame is decoded; EnhanceInvalid names what is wrong."""
    if not settings.input:
        raise EnhanceInvalid("input= is required: the video to enhance, e.g. "
                             "`python -m flows.enhance input=clip.mp4 output=out.mp4 post=svi_pro`")
    if not settings.output:
        raise EnhanceInvalid("output= is required: where to write, e.g. output=out.mp4 "
                             "(.mp4/.mov/.m4v: H.264, .mkv: lossless FFV1)")
    source, target = settings.path(settings.input), settings.path(settings.output)
    if not source.is_file():
        raise EnhanceInvalid(f"input={settings.input}: no such file ({source})")
    suffix = target.suffix.lower()
    if suffix not in OUTPUT_CODECS:
        raise EnhanceInvalid(f"output={settings.output}: unsupported extension {suffix!r}; use "
                             f"{', '.join(OUTPUT_CODECS)}")
    if target == source:
        raise EnhanceInvalid(f"output={settings.output} is the input file; write elsewhere")
    codec = settings.codec or OUTPUT_CODECS[suffix]
    if codec not in ("ffv1", "h264", "h265"):
        raise EnhanceInvalid(f"codec={codec}: use ffv1, h264 or h265")
    if codec == "ffv1" and suffix != ".mkv":
        raise EnhanceInvalid(f"codec=ffv1 needs a .mkv output, got {target.name}")
    if codec != "ffv1" and not (isinstance(settings.crf, int) and 0 <= settings.crf <= 51):
        raise EnhanceInvalid(f"crf={settings.crf!r}: a whole number in 0..51")
    try:
        steps = resolve_post_chain(settings.chain, post_presets(), Path(settings.cwd))
        load_models(steps)
    except ValueError as exc:  # includes ModelFileError: unusable weights
        raise EnhanceInvalid(f"post chain: {exc}") from None
    try:
        info = video_info(source)
    except (ValueError, RuntimeError) as exc:
        raise EnhanceInvalid(f"input={settings.input}: cannot read it as a video ({exc})") \
            from None
    fps = float(settings.fps) if settings.fps else info.fps
    if not (fps > 0 and math.isfinite(fps)):
        raise EnhanceInvalid(f"input={settings.input} has no frame rate in its header; give "
                             f"one with fps=, e.g. fps=16")
    if info.frames < 1:
        raise EnhanceInvalid(f"input={settings.input} has no video frames")
    frames_out = chain_frames_out(steps, info.frames, fps)
    fps_out = chain_fps(steps, fps)
    size = chain_size(steps, info.width, info.height)
    if codec != "ffv1" and (size[0] % 2 or size[1] % 2):
        raise EnhanceInvalid(f"{codec} needs even frame sides, the chain gives "
                             f"{size[0]}x{size[1]}; write a .mkv (lossless) or upscale")
    warnings = chain_warnings(steps)
    audio = _audio_plan(settings, source, info.frames / fps, frames_out / fps_out, warnings)
    return EnhanceJob(settings, source, target, info, fps, steps, codec, frames_out, fps_out,
                      size, audio, warnings)


def _audio_plan(settings: EnhanceSettings, source: Path, seconds_in: float, seconds_out: float,
                warnings: list[str]) -> AudioTrack | Path | None:
    choice = settings.audio if isinstance(settings.audio, str) else str(settings.audio)
    if choice == "none":
        return None
    if choice != "keep":
        path = settings.path(choice)
        try:
            streams = probe(path)
        except (FileNotFoundError, ValueError) as exc:
            raise EnhanceInvalid(f"audio={choice}: {exc}") from None
        if not streams.audio:
            raise EnhanceInvalid(f"audio={choice}: {path.name} has no audio stream")
        return AudioTrack(path, sha256=file_sha256(path))
    try:
        has_audio = bool(probe(source).audio)
    except (FileNotFoundError, ValueError):
        has_audio = False
    if not has_audio:
        return None
    if abs(seconds_out - seconds_in) > 0.05:
        warnings.append(f"the input's audio is dropped: the chain changes the duration "
                        f"({seconds_in:.2f}s -> {seconds_out:.2f}s); give audio=PATH for a "
                        f"soundtrack that fits, or audio=none to silence this")
        return None
    return source


def enhance(job: EnhanceJob, report=print) -> int:
    """Run the chain; returns the frames written. Raises RuntimeError when the chain or the
    encoder fails (nothing is left at the output)."""
    s = job.settings
    frames, fps_out = run_post_chain(read_frames(job.source), job.fps, job.steps)
    video_path = job.target if job.audio is None else temp_sibling(job.target)
    width, height = job.size_out
    count = 0
    started = time.perf_counter()
    last_report = started
    try:
        with VideoWriter(video_path, width, height, fps_out, codec=job.codec, crf=s.crf,
                         preset=s.preset) as writer:
            for frame in frames:
                writer.write(frame)
                count += 1
                now = time.perf_counter()
                if now - last_report >= 10:
                    last_report = now
                    report(f"  {count}/{job.frames_out} frames ({count / (now - started):.1f}/s)")
            if count != job.frames_out:
                raise RuntimeError(f"the chain gave {count} frames, {job.frames_out} were "
                                   f"planned")
        if isinstance(job.audio, AudioTrack):
            mux_audio(video_path, job.audio, job.target, count / fps_out)
        elif job.audio is not None:
            copy_audio(job.audio, video_path, job.target)
    finally:
        if video_path != job.target:
            video_path.unlink(missing_ok=True)
    return count


def run(settings: EnhanceSettings) -> int:
    try:
        job = prepare(settings)
    except EnhanceInvalid as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("Nothing was written.", file=sys.stderr)
        return EXIT_INVALID
    for warning in job.warnings:
        print(f"warning: {warning}")
    stages = " -> ".join(step.stage for step in job.steps) or "none (re-encode)"
    info = job.info
    print(f"Enhancing {job.source.name}: {info.frames} frames {info.width}x{info.height} at "
          f"{job.fps:g} fps; chain: {stages}; out: {job.frames_out} frames "
          f"{job.size_out[0]}x{job.size_out[1]} at {job.fps_out:g} fps")
    started = time.perf_counter()
    try:
        count = enhance(job)
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"error: enhancing {job.source.name} failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    seconds = time.perf_counter() - started
    print(f"Done in {seconds:.1f}s: {job.target} ({count} frames, {count / job.fps_out:.2f}s at "
          f"{job.fps_out:g} fps; {count / max(seconds, 1e-9):.1f} frames/s)")
    return EXIT_OK


def settings_from_config(cfg: DictConfig, cwd: str) -> EnhanceSettings:
    data = OmegaConf.to_container(cfg, resolve=True)
    post = data.get("post") or []
    presets = [post] if isinstance(post, str) else post
    inline = data.get("stages") or []
    if not isinstance(presets, list) or not all(isinstance(p, str) for p in presets):
        raise EnhanceInvalid(f"post={post!r}: give a preset name from conf/post/ (post=svi_pro) "
                             "or a list of them (post=[smooth,upscale2x])")
    if not isinstance(inline, list):
        raise EnhanceInvalid(f"stages={inline!r}: give a list, e.g. "
                             "'stages=[{stage: upscale, factor: 2}]'")
    return EnhanceSettings(
        input=str(data.get("input") or ""), output=str(data.get("output") or ""),
        chain=[p for p in presets if p != "none"] + inline, cwd=cwd, codec=data.get("codec"),
        crf=data.get("crf", 18), preset=str(data.get("preset", "medium")), fps=data.get("fps"),
        audio=str(data.get("audio", "keep")),
    )


@hydra.main(config_path="../conf/enhance", config_name="enhance", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        settings = settings_from_config(cfg, hydra.utils.get_original_cwd())
    except Exception as exc:  # noqa: BLE001 - a config value of the wrong shape
        print(f"error: {exc}", file=sys.stderr)
        _exit_codes.append(EXIT_INVALID)
        return
    with job_status(_exit_codes, f"enhancing {settings.input or 'the input'}"):
        _exit_codes.append(run(settings))


def cli() -> int:
    """Hydra exits with 1 on a bad override before `main` runs; that is a config error (2).
    `--help` lists the options, presets and stages (flows.config.help)."""
    from flows.config.help import asks_for_help, print_help

    if asks_for_help():
        return print_help("enhance")
    return hydra_exit_code(main, _exit_codes,
                           "Nothing was written: fix the command line above (`python -m "
                           "flows.enhance --help` lists the options; presets are "
                           "conf/post/*.yaml).")


if __name__ == "__main__":
    sys.exit(cli())

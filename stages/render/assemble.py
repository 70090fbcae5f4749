"""Episode assembly: shot clips -> transitions -> final encode, plus the render folder.

Everything here streams frames: a crossfade holds only the frames it blends, so memory does not
grow with the episode's length. Deliverables are encoded once per content key into the cache and
copied into the render folder, so an unchanged episode costs a file copy.
"""

from __future__ import annotations

import math
import shutil
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from stages.media.atomic import atomic_path
from stages.store.cache import CacheStore, explain_write_error
from stages.outputs.contact_sheet import contact_sheet
from stages.storyboard.image_refs import unchanged
from stages.plan.keys import deliverable_key
from stages.plan.timing import resampled_count
from stages.store.output_paths import render_files
from stages.control.publish import publish_controls
from stages.plan.build import RenderPlan, ShotPlan
from stages.plan.model import keyframe_label
from stages.render.steps import ShotResult
from stages.render.audio import mux_audio
from stages.post.chain import chain_size
from stages.render.transitions import TRANSITIONS, blend_frames, crossfade
from stages.media.png import load_png, save_png
from stages.media.video_io import VideoWriter, read_frames

EPISODE = "episode.mp4"
SHOT = "shot.mp4"


def resample(frames: Iterable[np.ndarray], src_fps: float, dst_fps: float) -> Iterator[np.ndarray]:
    """Change the frame rate by picking the nearest source frame for every output time."""
    if math.isclose(src_fps, dst_fps):
        yield from frames
        return
    ratio = src_fps / dst_fps
    wanted = 0  # output index
    for index, frame in enumerate(frames):
        while round(wanted * ratio) <= index:
            yield frame
            wanted += 1


def transition_frames(plan: RenderPlan, shots: Sequence[ShotPlan], counts: Sequence[int]) -> list[int]:
    """Frames blended between shot i and i+1 (0 for a cut), limited by both shots' lengths."""
    return [blend_frames(shots[i].transition, plan.output_fps, counts[i], counts[i + 1])
            for i in range(len(shots) - 1)]


def join(streams: Sequence[Iterable[np.ndarray]], blend: Sequence[int],
         kinds: Sequence[str] | None = None) -> Iterator[np.ndarray]:
    """Concatenate clips; the last blend[i] frames of clip i mix into the first of i+1, by
    kinds[i] ("crossfade" when not given, or "interpolated")."""
    carry: list[np.ndarray] = []  # tail of the previous clip, waiting to blend
    mix = crossfade
    for i, stream in enumerate(streams):
        hold = blend[i] if i < len(blend) else 0
        tail: deque[np.ndarray] = deque()
        head: list[np.ndarray] = []
        for frame in stream:
            if len(head) < len(carry):
                head.append(frame)
                if len(head) == len(carry):
                    yield from mix(carry, head)
                continue
            tail.append(frame)
            if len(tail) > hold:
                yield tail.popleft()
        if len(head) < len(carry):  # planned blend longer than the clip: should not happen
            raise RuntimeError(f"clip {i} is shorter than its transition ({len(carry)} frames)")
        carry = list(tail)
        mix = TRANSITIONS.get(kinds[i], crossfade) if kinds and i < len(kinds) else crossfade
    yield from carry


@dataclass
class EpisodeResult:
    video: Path
    frames: int
    fps: float
    cached: bool
    shot_videos: dict[str, Path]
    contact_sheet: Path


def _publish(src: Path, dst: Path) -> Path:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return dst


def _encode(path: Path, frames: Iterable[np.ndarray], plan: RenderPlan, title: str) -> int:
    out = plan.output
    width, height = chain_size(plan.post, plan.width, plan.height)  # upscale changes the size
    with VideoWriter(path, width, height, plan.output_fps, codec=out.codec, crf=out.crf,
                     preset=out.preset, metadata={"title": title}) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.frames_written


def encode_shot(plan: RenderPlan, shot: ShotResult, store: CacheStore) -> Path:
    """The shot's H.264/H.265 deliverable, encoded once per content key."""
    key = deliverable_key(plan, "shot", shot.key)
    entry = store.get("deliverable", key)
    if entry is None:
        with store.put("deliverable", key, {"shot": shot.id}) as tmp:
            _encode(tmp / SHOT, resample(read_frames(shot.clip), shot.fps, plan.output_fps),
                    plan, f"{plan.name} {shot.id}")
        entry = store.published("deliverable", key)
    return entry.file(SHOT)


def episode_frames(plan: RenderPlan, results: Sequence[ShotResult]) -> tuple[int, list[int]]:
    shots = plan.included()
    counts = [resampled_count(r.frames, r.fps, plan.output_fps) for r in results]
    blend = transition_frames(plan, shots, counts)
    return sum(counts) - sum(blend), blend


def assemble_episode(
    plan: RenderPlan, results: Sequence[ShotResult], store: CacheStore, out_dir: Path,
    subset: str | None = None,
) -> EpisodeResult:
    """Write the episode, shot videos, last frames and contact sheet into `out_dir`.

    `subset` (output_paths.subset_label: a `shots=[...]` render) names the episode and contact sheet apart
    from the full ones and keeps every other shot's video and last frames: a subset render
    updates the files of its shots and destroys nothing of the full render."""
    by_id = {r.id: r for r in results}
    ordered = [by_id[s.id] for s in plan.included()]
    total, blend = episode_frames(plan, ordered)
    entry = store.get("episode", plan.key)
    cached = entry is not None
    if entry is None:
        streams = [resample(read_frames(r.clip), r.fps, plan.output_fps) for r in ordered]
        kinds = [s.transition.type for s in plan.included()[:-1]]
        with store.put("episode", plan.key, {"storyboard": plan.name}) as tmp:
            target = tmp / ("video_only.mp4" if plan.audio is not None else EPISODE)
            frames = join(streams, blend, kinds)
            if plan.reactive is not None:  # audio.reactive's colour grade, if it maps any
                frames = plan.reactive.graded(frames, total, ordered[0].id if ordered else "")
            written = _encode(target, frames, plan, plan.name)
            if written != total:
                raise RuntimeError(f"episode has {written} frames, planned {total}")
            if plan.audio is not None:
                unchanged(plan.audio.path, "audio")  # still the file validation checked
                mux_audio(target, plan.audio, tmp / EPISODE, written / plan.output_fps)
                target.unlink()
        entry = store.published("episode", plan.key)

    files = render_files(plan.name, subset)
    video_name, sheet_name = files.video, files.contact_sheet
    shot_videos = {r.id: encode_shot(plan, r, store) for r in ordered}  # into the cache
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        video = _publish(entry.file(EPISODE), out_dir / video_name)
        shot_videos = {shot_id: _publish(path, out_dir / "shots" / f"{shot_id}.mp4")
                       for shot_id, path in shot_videos.items()}
        for result in ordered:
            for seg in result.segments:
                _publish(seg.last_frame,
                         out_dir / "frames" / f"{seg.shot_id}_{seg.index}_last.png")
            for keyframe in result.keyframes:  # generated start / end images
                _publish(keyframe.image, out_dir / "frames" / f"{keyframe.label}.png")
        _remove_stale(out_dir, plan, whole=subset is None)
        publish_controls(plan, store, out_dir, whole=subset is None)  # control/<shot>.mp4
        rows = []
        for r in ordered:
            rows.append((r.id, [load_png(p) for p in r.thumbs]))
            if r.keyframes:  # a row of its own: the images the shot was generated from
                rows.append((f"{r.id} keyframes", [load_png(k.image) for k in r.keyframes]))
        sheet = contact_sheet(rows)
        sheet_path = save_png(out_dir / sheet_name, sheet)
    except OSError as exc:  # the render folder's disk is full or read-only: say so
        better = explain_write_error(exc, out_dir, "the render folder", setting="output_dir=")
        if better is not None:
            raise better from exc
        raise
    return EpisodeResult(video, total, plan.output_fps, cached, shot_videos, sheet_path)


def _remove_stale(out_dir: Path, plan: RenderPlan, whole: bool) -> None:
    """Drop what an earlier render wrote that this plan no longer has. A full render (`whole`)
    drops shot videos, last frames and keyframes of shots the storyboard lost; every render drops
    the generated keyframes its own shots stopped generating (`image:` back to a file), so
    frames/ never shows a keyframe the shot no longer starts from. A subset render
    (`shots=[...]`) touches only its shots' keyframe files: the full render's stay."""
    keep_keyframes = {f"{keyframe_label(k.shot_id, k.which)}.png"
                      for s in plan.included() for k in s.keyframes}
    frames = out_dir / "frames"
    if whole:
        stale = [p for pattern in ("*_keyframe.png", "*_keyframe_end.png")
                 for p in frames.glob(pattern) if p.name not in keep_keyframes]
    else:
        mine = {f"{keyframe_label(s.id, which)}.png"
                for s in plan.included() for which in ("start", "end")}
        stale = [frames / name for name in sorted(mine - keep_keyframes)]
    for path in stale:
        path.unlink(missing_ok=True)
    if not whole:
        return
    keep_shots = {f"{s.id}.mp4" for s in plan.included()}
    keep_frames = {f"{j.shot_id}_{j.index}_last.png" for s in plan.included() for j in s.segments}
    for folder, keep, pattern in (("shots", keep_shots, "*.mp4"),
                                  ("frames", keep_frames, "*_last.png")):
        for path in (out_dir / folder).glob(pattern):
            if path.name not in keep:
                path.unlink(missing_ok=True)

"""The work of a render, as plain functions the Prefect flow wraps in tasks.

render_segment: one generation call (or a cache hit) -> lossless clip + last frame.
finish_shot:    a shot's segments -> post chain -> lossless shot clip + thumbnails (cached).
Each step reads and writes the content-addressed cache only; copying deliverables into the
render folder is `stages.assemble`'s job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from engine.base import Engine, GenerationRequest, ProgressFn
from engine.images import load_rgb
from stages.cache import CacheStore
from stages.contact_sheet import sample_indices, thumbnail
from stages.generate import generate_frames
from stages.keys import content_key
from stages.source_video import video_slice
from stages.plan import SegmentJob, ShotPlan
from stages.post import PostStep, chain_size, run_post_chain
from stages.video_io import VideoWriter, load_png, read_frames, save_png

CLIP = "clip.mkv"
LAST = "last.png"
THUMBS = 6
THUMB_WIDTH = 192

# Called with one line of progress for the console.
Report = Callable[[str], None]


@dataclass(frozen=True)
class SegmentResult:
    shot_id: str
    index: int
    key: str
    frames: int
    seed: int
    cached: bool
    seconds: float
    clip: Path
    last_frame: Path
    # How the frames were made: engine, degrade steps, fallback reason (see stages.generate).
    generation: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ShotResult:
    id: str
    key: str
    frames: int
    fps: float
    cached: bool
    seconds: float
    clip: Path
    thumbs: list[Path] = field(default_factory=list)
    segments: list[SegmentResult] = field(default_factory=list)


def build_request(job: SegmentJob, upstream: SegmentResult | None) -> GenerationRequest:
    if job.start.kind == "chain":
        if upstream is None:
            raise ValueError(f"segment {job.label} chains from {job.start.upstream}, "
                             "but no upstream result was given")
        start = load_png(upstream.last_frame)
    elif job.start.kind == "image":
        start = load_rgb(job.start.image, job.width, job.height)
    else:
        start = None
    end = load_rgb(job.end_image, job.width, job.height) if job.end_image else None
    videos = {
        name: video_slice(path, job.start_time, job.frames, job.fps, job.width, job.height)
        for name, path in (("source_video", job.source_video),
                           ("driving_video", job.driving_video)) if path is not None
    }
    return GenerationRequest(
        prompt=job.prompt, negative=job.negative, width=job.width, height=job.height,
        num_frames=job.frames, fps=job.fps, seed=job.seed, start_image=start, end_image=end,
        camera=job.camera, shot_id=job.shot_id, segment_index=job.index, params=job.params,
        loras=job.loras, **videos,
    )


def segment_key(job: SegmentJob, upstream: SegmentResult | None) -> str:
    """The key the segment is stored under: the planned one, unless its upstream came out
    different from the plan (a fallback engine rendered it), since its first frame differs."""
    if upstream is None or job.upstream_key is None or upstream.key == job.upstream_key:
        return job.key
    return content_key("segment", {"planned": job.key, "upstream": upstream.key})


def render_segment(
    job: SegmentJob,
    upstream: SegmentResult | None,
    engine: Engine,
    store: CacheStore,
    report: Report = lambda line: None,
    progress: ProgressFn | None = None,
    fallback: Engine | None = None,
    fallback_params: dict | None = None,
) -> SegmentResult:
    """Render one segment unless the cache has it; the entry holds the clip and last frame.
    `progress(done, total)` goes to the engine (denoising steps or frames)."""
    started = time.perf_counter()
    key = segment_key(job, upstream)
    # A segment the fallback engine rendered in an earlier run is stored under its own key.
    fallback_key = None if fallback is None else content_key(
        "segment", {"planned": key, "fallback": fallback.identity()})
    entry = store.get("segment", key)
    if entry is None and fallback_key is not None:
        entry = store.get("segment", fallback_key)
    cached = entry is not None
    if entry is None:
        request = build_request(job, upstream)
        frames, record = generate_frames(request, engine, fallback, progress, report,
                                         job.camera_apply, fallback_params)
        expected = (job.frames, job.height, job.width, 3)
        if frames.shape != expected or frames.dtype != np.uint8:
            raise RuntimeError(f"engine returned {frames.dtype} {frames.shape} for segment "
                               f"{job.label}, expected uint8 {expected}")
        if record.fallback_reason is not None:
            key = fallback_key
        with store.put("segment", key, {"shot": job.shot_id, "index": job.index,
                                        "frames": job.frames, "fps": job.fps,
                                        "generation": record.as_dict()}) as tmp:
            with VideoWriter(tmp / CLIP, job.width, job.height, job.fps, codec="ffv1") as out:
                for frame in frames:
                    out.write(frame)
            save_png(tmp / LAST, frames[-1])
        entry = store.published("segment", key)
    generation = entry.meta.get("info", {}).get("generation") or {"engine": engine.spec.name}
    seconds = time.perf_counter() - started
    via = "" if generation.get("engine") == engine.spec.name else f" on {generation['engine']}"
    report(f"  {job.label:<14} {job.frames:>4} frames  "
           f"{'cached' if cached else f'rendered in {seconds:.1f}s'}{via}")
    return SegmentResult(job.shot_id, job.index, entry.key, job.frames, job.seed, cached,
                         seconds, entry.file(CLIP), entry.file(LAST), generation)


def shot_frames(shot: ShotPlan, segments: Sequence[SegmentResult]) -> Iterator[np.ndarray]:
    """The shot's frames in order, streamed, without the repeated first frame of chained parts."""
    for job, result in zip(shot.segments, segments):
        frames = read_frames(result.clip)
        if job.drop_first:
            next(frames, None)
        yield from frames


def finish_shot(
    shot: ShotPlan,
    segments: Sequence[SegmentResult],
    post: Sequence[PostStep],
    fps: float,
    store: CacheStore,
    report: Report = lambda line: None,
    progress: ProgressFn | None = None,
) -> ShotResult:
    """Run the post chain over the shot's segments into a lossless shot clip (cached by key).
    `progress(done, total)` counts the shot's output frames as they are written."""
    started = time.perf_counter()
    entry = store.get("shot", shot.key)
    cached = entry is not None
    if entry is None:
        wanted = set(sample_indices(shot.post_frames, THUMBS))
        frames, out_fps = run_post_chain(shot_frames(shot, segments), fps, post)
        # The chain's output size (upscale changes it).
        width, height = chain_size(post, shot.segments[0].width, shot.segments[0].height)
        with store.put("shot", shot.key, {"shot": shot.id}) as tmp:
            count = 0
            with VideoWriter(tmp / CLIP, width, height, out_fps, codec="ffv1") as out:
                for frame in frames:
                    out.write(frame)
                    if count in wanted:
                        save_png(tmp / f"thumb_{count:06d}.png", thumbnail(frame, THUMB_WIDTH))
                    count += 1
                    if progress is not None:
                        progress(count, shot.post_frames)
            if count != shot.post_frames:
                raise RuntimeError(f"shot {shot.id}: post chain gave {count} frames, planned "
                                   f"{shot.post_frames}")
            (tmp / "frames.txt").write_text(f"{count} {out_fps!r}\n")
        entry = store.published("shot", shot.key)
    count_text, fps_text = entry.file("frames.txt").read_text().split()
    thumbs = sorted(entry.path.glob("thumb_*.png"))
    seconds = time.perf_counter() - started
    report(f"  {shot.id:<14} {int(count_text):>4} frames  "
           f"{'post cached' if cached else f'post chain in {seconds:.1f}s'}")
    return ShotResult(shot.id, shot.key, int(count_text), float(fps_text), cached, seconds,
                      entry.file(CLIP), thumbs, list(segments))

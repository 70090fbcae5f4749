"""The work of a render, as plain functions the Prefect flow wraps in tasks.

render_segment: one generation call (or a cache hit) -> lossless clip + last frame.
finish_shot:    a shot's segments -> post chain -> lossless shot clip + thumbnails (cached).
Each step reads and writes the content-addressed cache only; copying deliverables into the
render folder is `stages.render.assemble`'s job.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np

from engine.base import Engine, GenerationRequest, ProgressFn
from engine.images import load_rgb
from stages.store.cache import CacheStore
from stages.outputs.contact_sheet import sample_indices, thumbnail
from stages.control.clip import with_control
from stages.control.pose_clip import with_driving_pose
from stages.render.generate import generate_frames
from stages.render.keyframes import KeyframeResult, keyframe_images, load_references
from stages.storyboard.image_refs import unchanged
from stages.render.depth_input import load_depth
from stages.plan.keys import content_key
from stages.render.source_video import video_slice
from stages.plan.build import FrameRef, SegmentJob, ShotPlan
from stages.post.chain import PostStep, chain_size, run_post_chain
from stages.render.color_drift import match_segment
from stages.render.overlap_join import OverlapParams, join_overlap
from stages.media.png import load_png, save_png
from stages.media.video_io import VideoWriter, first_frame, read_frames, tail_frames

CLIP = "clip.mkv"
LAST = "last.png"
LATENTS = "latents.safetensors"  # latent / svi chaining: the segment's last latent frames
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
    # How the frames were made: engine, degrade steps, fallback reason (see stages.render.generate).
    generation: dict = field(default_factory=dict)
    latents: Path | None = None  # the last latent frames, for latent / svi chaining


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
    keyframes: list[KeyframeResult] = field(default_factory=list)  # generated start / end


def frame_of(ref: FrameRef | None, source: SegmentResult | None,
             job: SegmentJob) -> np.ndarray | None:
    """The frame `ref` names (see stages.plan.build.FrameRef), at the job's size; `source` is the
    result of the segment it names."""
    if ref is None:
        return None
    if ref.kind == "image":
        return load_rgb(unchanged(ref.image, "anchor image"), job.width, job.height)
    if source is None:
        raise ValueError(f"segment {job.label} needs a frame of {ref.segment}, but no result "
                         "for it was given")
    if ref.kind == "last_frame":
        return load_png(source.last_frame)
    return first_frame(source.clip)


def upstream_latents(upstream: SegmentResult | None) -> np.ndarray | None:
    if upstream is None or upstream.latents is None:
        return None
    from safetensors.numpy import load_file

    return load_file(str(upstream.latents))["latents"]


def chain_inputs(job: SegmentJob, upstream: SegmentResult | None,
                 anchor: np.ndarray | None) -> dict:
    """What the request carries from the upstream segment in the shot's chain mode. An
    upstream without latents (rendered by a fallback engine) hands over pixels instead."""
    chain = job.chain
    inputs: dict = {"keep_latents": chain.keep_latents}
    if upstream is None:
        return inputs
    if chain.context:
        inputs["context_frames"] = tail_frames(upstream.clip, chain.context)
    if chain.conditioning in ("latent", "svi"):
        latents = upstream_latents(upstream)
        if latents is None and chain.motion_latents:
            return inputs  # pixels: the engine (or the fallback) starts from the last frame
        inputs["conditioning"] = chain.conditioning
        if chain.motion_latents:
            inputs["context_latents"] = latents[:, -chain.motion_latents:]
        if chain.conditioning == "svi":
            inputs["anchor_image"] = anchor
    return inputs


def build_request(job: SegmentJob, upstream: SegmentResult | None,
                  anchor: np.ndarray | None = None,
                  end_source: SegmentResult | None = None,
                  honours: frozenset[str] | None = None,
                  keyframes: Mapping[str, Path] | None = None) -> GenerationRequest:
    """`keyframes`: key -> PNG of the generated keyframes the job starts or ends on."""
    keyframes = keyframes or {}
    chained = chain_inputs(job, upstream, anchor)
    if job.start.kind == "chain":
        if upstream is None:
            raise ValueError(f"segment {job.label} chains from {job.start.upstream}, "
                             "but no upstream result was given")
        context = chained.get("context_frames")
        # Overlap: the segment starts where its context starts, K frames before the end.
        start = context[0] if context is not None else load_png(upstream.last_frame)
    elif job.start.kind == "keyframe":
        start = load_rgb(_keyframe(job, job.start_keyframe, keyframes), job.width, job.height)
    elif job.start.kind == "image":
        start = load_rgb(unchanged(job.start.image, "image"), job.width, job.height)
    else:
        start = None
    end = (load_rgb(unchanged(job.end_image, "end_image"), job.width, job.height)
           if job.end_image else None)
    if job.end_keyframe is not None:
        end = load_rgb(_keyframe(job, job.end_keyframe, keyframes), job.width, job.height)
    if job.end_from is not None:  # a generated transition ends on the next shot's first frame
        end = frame_of(job.end_from, end_source, job)
    videos = {
        name: video_slice(unchanged(path, name), job.start_time, job.frames, job.fps, job.width, job.height)
        for name, path in (("source_video", job.source_video),
                           ("driving_video", job.driving_video))
        # An input video the engine ignores is never opened (`honours`: the engine's keys).
        if path is not None and (honours is None or name in honours)
    }
    return GenerationRequest(
        prompt=job.prompt, negative=job.negative, width=job.width, height=job.height,
        num_frames=job.frames, fps=job.fps, seed=job.seed, start_image=start, end_image=end,
        camera=job.camera, shot_id=job.shot_id, segment_index=job.index, params=job.params,
        loras=tuple(replace(lora, path=str(unchanged(lora.path, "LoRA"))) for lora in job.loras),
        reference_images=load_references(job.references), **videos, **chained,
        depth=load_depth(job.depth, job.depth_model, job.width, job.height),
    )


def _keyframe(job: SegmentJob, key: str | None, keyframes: Mapping[str, Path]) -> Path:
    if key not in keyframes:
        raise ValueError(f"segment {job.label} starts or ends on keyframe {str(key)[:12]}, but "
                         "no result for it was given")
    return keyframes[key]


def segment_key(job: SegmentJob, upstream: SegmentResult | None) -> str:
    """The key the segment is stored under: the planned one, unless its upstream came out
    different from the plan (a fallback engine rendered it), since its first frame differs."""
    if upstream is None or job.upstream_key is None or upstream.key == job.upstream_key:
        return job.key
    return content_key("segment", {"planned": job.key, "upstream": upstream.key})


def match_colors(frames: np.ndarray, job: SegmentJob, anchor: np.ndarray | None) -> np.ndarray:
    """Colour drift control (storyboard `chain.color_match`): the segment's colours are pulled
    towards the shot's anchor (or its own first frame, `previous`), progressively, before it is
    stored, so the next segment starts from corrected colours and drift never compounds.
    Frame 0 stays exact; a segment with an end image keeps its last frame exact too."""
    mode = job.chain.color_match
    if mode == "none" or job.chain.color_strength <= 0:
        return frames
    reference = frames[0] if mode == "previous" else anchor
    if reference is None:
        raise ValueError(f"segment {job.label}: color_match {mode!r} needs the shot's anchor")
    return match_segment(frames, reference, job.chain.color_strength,
                         pin_end=job.end_image is not None)


def render_segment(
    job: SegmentJob,
    upstream: SegmentResult | None,
    engine: Engine,
    store: CacheStore,
    report: Report = lambda line: None,
    progress: ProgressFn | None = None,
    fallback: Engine | None = None,
    fallback_params: dict | None = None,
    anchor_source: SegmentResult | None = None,
    end_source: SegmentResult | None = None,
    keyframes: Sequence[KeyframeResult] = (),
    stills: Engine | None = None,
) -> SegmentResult:
    """Render one segment unless the cache has it; the entry holds the clip, the last frame
    and, for latent / svi chaining, the last latent frames. `progress(done, total)` goes to the
    engine (denoising steps or frames). `anchor_source`: the segment the shot's anchor frame
    comes from, when it is not an image file (see stages.plan.build.FrameRef); `end_source`: the
    segment a generated transition's end frame comes from; `stills`: the image engine that makes
    a start image when a t2v segment falls back to an image-to-video engine."""
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
        anchor = frame_of(job.anchor, anchor_source, job)
        request = build_request(job, upstream, anchor, end_source, engine.spec.honours,
                                keyframe_images(keyframes))
        # Helper models (depth, pose) run where the engine does: the GPU on a GPU worker.
        device = getattr(engine, "device", "cpu")
        request = with_control(request, job.control, store, job.control_model,
                               engine.spec.control, device)
        request = with_driving_pose(request, job, store, device)
        frames, record = generate_frames(request, engine, fallback, progress, report,
                                         job.camera_apply, fallback_params, stills)
        expected = (job.frames, job.height, job.width, 3)
        if frames.shape != expected or frames.dtype != np.uint8:
            raise RuntimeError(f"engine returned {frames.dtype} {frames.shape} for segment "
                               f"{job.label}, expected uint8 {expected}")
        frames = match_colors(frames, job, anchor)
        if record.fallback_reason is not None:
            key = fallback_key
        with store.put("segment", key, {"shot": job.shot_id, "index": job.index,
                                        "frames": job.frames, "fps": job.fps,
                                        "generation": record.as_dict()}) as tmp:
            with VideoWriter(tmp / CLIP, job.width, job.height, job.fps, codec="ffv1") as out:
                for frame in frames:
                    out.write(frame)
            save_png(tmp / LAST, frames[-1])
            if record.latents is not None:
                from safetensors.numpy import save_file

                save_file({"latents": np.ascontiguousarray(record.latents, np.float32)},
                          str(tmp / LATENTS))
        entry = store.published("segment", key)
    generation = entry.meta.get("info", {}).get("generation") or {"engine": engine.spec.name}
    seconds = time.perf_counter() - started
    via = "" if generation.get("engine") == engine.spec.name else f" on {generation['engine']}"
    report(f"  {job.label:<14} {job.frames:>4} frames  "
           f"{'cached' if cached else f'rendered in {seconds:.1f}s'}{via}")
    latents = entry.path / LATENTS
    return SegmentResult(job.shot_id, job.index, entry.key, job.frames, job.seed, cached,
                         seconds, entry.file(CLIP), entry.file(LAST), generation,
                         latents if latents.is_file() else None)


def shot_frames(shot: ShotPlan, segments: Sequence[SegmentResult],
                report: Report = lambda line: None) -> Iterator[np.ndarray]:
    """The shot's frames in order, streamed: each chained segment's lead frames are dropped
    (they repeat or re-render its upstream's), or in overlap mode joined with the upstream's
    last frames by motion-guided blending (memory: the overlap's frames)."""
    jobs = list(shot.segments)
    held: list[np.ndarray] = []  # the previous segment's tail, waiting for the overlap join
    for i, (job, result) in enumerate(zip(jobs, segments)):
        frames = read_frames(result.clip)
        lead, blend = job.chain.lead, (job.chain.blend if held else 0)
        if lead:
            head = [frame for _, frame in zip(range(lead), frames)]
            if blend:
                joined, info = join_overlap(np.stack(held), np.stack(head[lead - blend:]),
                                            shot.overlap or OverlapParams())
                if info.warning:
                    report(f"warning: shot {shot.id} segment {job.index}: {info.warning}")
                yield from joined
        # Hold back the frames the next segment's overlap joins with, and those a generated
        # transition ends on (the next shot's first frame, which that shot shows itself).
        keep = (jobs[i + 1].chain.blend if i + 1 < len(jobs) else 0) + job.trim_end
        window: deque[np.ndarray] = deque()
        for frame in frames:
            window.append(frame)
            if len(window) > keep:
                yield window.popleft()
        held = list(window)[:len(window) - job.trim_end]


def finish_shot(
    shot: ShotPlan,
    segments: Sequence[SegmentResult],
    post: Sequence[PostStep],
    fps: float,
    store: CacheStore,
    report: Report = lambda line: None,
    progress: ProgressFn | None = None,
    keyframes: Sequence[KeyframeResult] = (),
) -> ShotResult:
    """Run the post chain over the shot's segments into a lossless shot clip (cached by key).
    `progress(done, total)` counts the shot's output frames as they are written."""
    started = time.perf_counter()
    entry = store.get("shot", shot.key)
    cached = entry is not None
    if entry is None:
        wanted = set(sample_indices(shot.post_frames, THUMBS))
        frames, out_fps = run_post_chain(shot_frames(shot, segments, report), fps, post)
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
                      entry.file(CLIP), thumbs, list(segments), list(keyframes))

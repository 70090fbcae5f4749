"""A shot's control clip: the source sampled at the plan's fps and size, extracted by kind, and
cached by content (the source's bytes and the settings: ControlJob.clip_key); a segment's slice
of it; and the request that carries it.

The source is sampled by stages.render.source_video.sampled_frames, as every input video is
(nearest frame at each output time from `start`, halves up; a clip shorter than the shot holds
its last frame), streaming: the whole shot is never in memory, so extraction runs on any length. The clip
is stored lossless (FFV1, the extraction's exact pixels feed the engine) and as H.264
(control.mp4, what renders/NAME/control/<shot>.mp4 shows).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from engine.base import GenerationRequest
from stages.control.extract import extractor
from stages.control.job import ControlJob
from stages.media.video_io import VideoWriter, read_frames
from stages.render.source_video import sampled_frames
from stages.plan.keys import input_sha256
from stages.storyboard.image_refs import unchanged
from stages.store.cache import CacheStore

KIND = "control"  # the cache kind of extracted control clips
CLIP = "control.mkv"  # lossless: what the engine is given
PREVIEW = "control.mp4"  # H.264: what the user looks at


def control_clip(job: ControlJob, store: CacheStore, model: Path | None = None,
                 device: str = "cpu") -> Path:
    """The shot's extracted control clip (lossless) in the cache, extracted on a miss."""
    video = unchanged(job.video, "control video")  # still the file validation checked
    key = job.clip_key(input_sha256(video))
    entry = store.get(KIND, key)
    if entry is None:
        source = sampled_frames(video, job.start, job.shot_frames, job.fps, job.width, job.height)
        with store.put(KIND, key, {"kind": job.kind, "frames": job.shot_frames,
                                   "fps": job.fps}) as tmp:
            with VideoWriter(tmp / CLIP, job.width, job.height, job.fps, codec="ffv1") as exact, \
                    VideoWriter(tmp / PREVIEW, job.width, job.height, job.fps,
                                codec="h264") as shown:
                for frame in extractor(job.kind, model, device)(source):
                    exact.write(frame)
                    shown.write(frame)
            if exact.frames_written != job.shot_frames:
                raise RuntimeError(f"control clip has {exact.frames_written} frames, planned "
                                   f"{job.shot_frames}")
        entry = store.published(KIND, key)
    return entry.path


def segment_control(job: ControlJob, frames: int, store: CacheStore, model: Path | None = None,
                    device: str = "cpu") -> np.ndarray:
    """The control frames of a segment: uint8 (frames, H, W, 3), its slice of the shot's clip."""
    clip = control_clip(job, store, model, device) / CLIP
    wanted = job.frame_indices(frames)
    needed, picked = set(wanted), {}
    for index, frame in enumerate(read_frames(clip)):
        if index in needed:
            picked[index] = frame
        if index >= max(wanted):
            break
    return np.stack([picked[i] for i in wanted])


def with_control(request: GenerationRequest, job: ControlJob | None, store: CacheStore,
                 model: Path | None = None, takes_control: bool = True,
                 device: str = "cpu") -> GenerationRequest:
    """`request` with the segment's control frames and strength (unchanged without control, or
    for an engine that takes none: validation refused those, a fallback engine may be one)."""
    if job is None or not takes_control:
        return request
    frames = segment_control(job, request.num_frames, store, model, device)
    return replace(request, control_video=frames, control_strength=job.strength)

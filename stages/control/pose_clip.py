"""An animate segment's pose (`pose.model` reading the driving video): the performer's keypoints
per frame, cached by the driving video's bytes, the segment's slice of it and the model's
identity, with the skeleton drawn as H.264 (pose.mp4) for renders/NAME/control/<shot>.mp4.

The keypoints are what the engine is given (GenerationRequest.driving_pose): it draws its own
pose video from them and crops the face at the head. Cached apart from the segment, so editing
a prompt or a seed re-renders the segment without running the pose model again, and a retry or
a fallback after a crash finds them done.
"""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np

from engine.base import GenerationRequest
from stages.media.video_io import VideoWriter
from stages.plan.keys import content_key, input_sha256
from stages.plan.model import SegmentJob
from stages.render.source_video import video_slice
from stages.storyboard.image_refs import unchanged
from stages.store.cache import CacheStore

KIND = "pose"  # the cache kind
POINTS = "keypoints.npy"  # float32 (frames, K, 3): x, y, confidence in the segment's pixels
PREVIEW = "pose.mp4"  # the skeleton, what the user looks at


def pose_key(job: SegmentJob, video_sha: str) -> str:
    """The cache key of a segment's keypoints: the driving video's bytes, the slice the segment
    takes of it (start, frames, fps, size) and the pose model's identity (which holds the
    code's engine.pose.REVISION)."""
    return content_key(KIND, {
        "video": video_sha, "start": round(job.start_time, 6), "frames": job.frames,
        "fps": job.fps, "width": job.width, "height": job.height, "model": job.pose})


def pose_entry(job: SegmentJob, store: CacheStore, driving: np.ndarray | None = None,
               device: str = "cpu") -> Path:
    """The folder of the segment's cached keypoints and skeleton video, estimated on a miss
    (from `driving`, the segment's driving frames, or decoded here when not given) on
    `device`."""
    from engine.pose.draw import draw_pose
    from engine.pose.estimate import estimate_poses

    if job.pose is None or job.driving_video is None or job.pose_model is None:
        raise ValueError(f"segment {job.label} has no planned pose (an animate shot with "
                         "pose.model set)")
    video = unchanged(job.driving_video, "driving_video")
    key = pose_key(job, input_sha256(video))
    entry = store.get(KIND, key)
    if entry is not None:
        return entry.path
    if driving is None:
        driving = video_slice(video, job.start_time, job.frames, job.fps, job.width, job.height)
    # On the render engine's device: ViTPose-B takes ~0.4 s a frame on two CPU cores
    # (tests/perf/bench_pose.py), a minute and more for an 81-frame segment. Keys do not depend
    # on the values, so a worker on another device reuses the cached keypoints as they are.
    points = estimate_poses(driving, job.pose_model, device=device)
    with store.put(KIND, key, {"shot": job.shot_id, "frames": job.frames}) as tmp:
        buffer = io.BytesIO()
        np.save(buffer, points.astype(np.float32))
        (tmp / POINTS).write_bytes(buffer.getvalue())
        with VideoWriter(tmp / PREVIEW, job.width, job.height, job.fps, codec="h264") as shown:
            for frame_points in points:
                shown.write(draw_pose(frame_points, job.width, job.height))
    return store.published(KIND, key).path


def with_driving_pose(request: GenerationRequest, job: SegmentJob, store: CacheStore,
                      device: str = "cpu") -> GenerationRequest:
    """`request` with the performer's keypoints in its driving frames, for an animate segment
    with a planned pose; unchanged otherwise (or when the engine takes no driving video).
    `device`: where the pose model runs on a cache miss (the render engine's)."""
    if job.pose is None or request.driving_video is None:
        return request
    folder = pose_entry(job, store, request.driving_video, device)
    points = np.load(folder / POINTS, allow_pickle=False)
    return replace(request, driving_pose=points)


def pose_keys(plan) -> list[str]:
    """Cache keys of the keypoints a RenderPlan uses (for cache maintenance)."""
    return [pose_key(job, input_sha256(job.driving_video)) for job in plan.segments()
            if job.pose is not None and job.driving_video is not None]

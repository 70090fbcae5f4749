"""renders/NAME/control/<shot>.mp4: the control video each shot was given, so the user sees
what guided the model (the extracted frames at the generation fps and size, before post): a
`control:` clip's extraction, or an animate shot's skeleton read from its driving video with
`pose.model` (the pose video wan_animate draws from the same keypoints)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from stages.control.clip import PREVIEW, control_clip
from stages.control.pose_clip import PREVIEW as POSE_PREVIEW, pose_entry
from stages.media.atomic import atomic_path
from stages.store.cache import CacheStore
from stages.store.output_paths import UnsafeOutputPath

FOLDER = "control"


def publish_controls(plan: Any, store: CacheStore, out_dir: Path, whole: bool = True
                     ) -> dict[str, Path]:
    """Copy each included shot's control video into `out_dir/control/` (atomically; extracted
    now on a cache miss). A full render (`whole`) drops the files of shots that no longer have
    one; a subset render touches only its own shots'. Returns shot id -> file."""
    folder = Path(out_dir) / FOLDER
    if folder.is_symlink():  # the atomic rename would land wherever the link points
        raise UnsafeOutputPath(f"{folder} is a symlink; a render writes only into real folders. "
                               "Remove the link")
    written: dict[str, Path] = {}
    for shot in plan.included():
        job = next((j for j in shot.segments if j.control is not None), None)
        posed = [j for j in shot.segments if j.pose is not None]
        if job is None and not posed:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / f"{shot.id}.mp4") as tmp:
            if job is not None:
                shutil.copyfile(control_clip(job.control, store, job.control_model) / PREVIEW,
                                tmp)
            elif len(posed) == 1 and posed[0].clip_frames == posed[0].frames:
                shutil.copyfile(pose_entry(posed[0], store) / POSE_PREVIEW, tmp)
            else:  # an animate shot in several segments: their skeletons as the shot plays
                _join_poses(posed, store, tmp)
        written[shot.id] = folder / f"{shot.id}.mp4"
    if whole and folder.is_dir():
        for path in folder.glob("*.mp4"):
            if path.stem not in written:
                path.unlink(missing_ok=True)
    return written


def _join_poses(jobs: list, store: CacheStore, target: Path) -> None:
    """The segments' skeleton videos as one, each without the frames its shot does not show
    (a chained segment's lead, a trimmed end). A keypoints entry missing here (pruned apart
    from its segment) is read again, on the CPU."""
    from stages.media.video_io import VideoWriter, read_frames

    first = jobs[0]
    with VideoWriter(target, first.width, first.height, first.fps, codec="h264") as out:
        for job in jobs:
            frames = list(read_frames(pose_entry(job, store) / POSE_PREVIEW))
            for frame in frames[job.chain.lead:job.frames - job.trim_end]:
                out.write(frame)


def control_summary(plan: Any, store: CacheStore) -> list[str]:
    """Dry-run lines: per shot, the control it is given and whether its extraction (or an
    animate shot's keypoints) is cached already."""
    from stages.control.pose_clip import KIND as POSE_KIND, pose_key
    from stages.plan.keys import input_sha256

    lines = []
    for shot in plan.included():
        job = next((j for j in shot.segments if j.control is not None), None)
        posed = [j for j in shot.segments if j.pose is not None]
        if job is not None:
            control = job.control
            hit = store.has("control", control.clip_key(input_sha256(control.video)))
            lines.append(f"control: {shot.id} {control.kind} of {control.video.name} from "
                         f"{control.start:g}s at strength {control.strength:g} "
                         f"({'cached' if hit else 'to extract'})")
        elif posed:
            hits = sum(store.has(POSE_KIND, pose_key(j, input_sha256(j.driving_video)))
                       for j in posed)
            state = "cached" if hits == len(posed) else \
                "to read" if not hits else f"{hits} of {len(posed)} segments cached"
            lines.append(f"pose: {shot.id} reads the performer in {posed[0].driving_video.name} "
                         f"with pose.model ({state})")
    return lines

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
        posed = next((j for j in shot.segments if j.pose is not None), None)
        if job is not None:
            source = control_clip(job.control, store, job.control_model) / PREVIEW
        elif posed is not None and len(shot.segments) == 1:  # an animate shot is one segment
            source = pose_entry(posed, store) / POSE_PREVIEW
        else:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / f"{shot.id}.mp4") as tmp:
            shutil.copyfile(source, tmp)
        written[shot.id] = folder / f"{shot.id}.mp4"
    if whole and folder.is_dir():
        for path in folder.glob("*.mp4"):
            if path.stem not in written:
                path.unlink(missing_ok=True)
    return written


def control_summary(plan: Any, store: CacheStore) -> list[str]:
    """Dry-run lines: per shot, the control it is given and whether its extraction (or an
    animate shot's keypoints) is cached already."""
    from stages.control.pose_clip import KIND as POSE_KIND, pose_key
    from stages.plan.keys import file_sha256

    lines = []
    for shot in plan.included():
        job = next((j for j in shot.segments if j.control is not None), None)
        posed = next((j for j in shot.segments if j.pose is not None), None)
        if job is not None:
            control = job.control
            hit = store.has("control", control.clip_key(file_sha256(control.video)))
            lines.append(f"control: {shot.id} {control.kind} of {control.video.name} from "
                         f"{control.start:g}s at strength {control.strength:g} "
                         f"({'cached' if hit else 'to extract'})")
        elif posed is not None:
            hit = store.has(POSE_KIND, pose_key(posed, file_sha256(posed.driving_video)))
            lines.append(f"pose: {shot.id} reads the performer in {posed.driving_video.name} "
                         f"with pose.model ({'cached' if hit else 'to read'})")
    return lines

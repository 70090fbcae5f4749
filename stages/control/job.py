"""What a segment's control video is: plain data in its SegmentJob, so it reaches the key.

Every field changes the control frames a segment is given (the source's bytes through `video`,
which the key hashes), so all of them are key material; the depth model's folder is not (an
absolute path), its identity is (`model`); so is the pose model's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.plan.keys import content_key

# Bump when the frames an extraction makes change (thresholds, colour wheel, resampling); pose
# control clips also follow engine.pose.REVISION (through the pose model's identity).
EXTRACT_REVISION = 1


@dataclass(frozen=True)
class ControlJob:
    video: Path  # the confined control clip (validation resolved it); keyed by its bytes
    kind: str  # depth | canny | gray | flow | pose
    strength: float  # 0..1: VACE's conditioning scale, the preview's blend
    start: float  # seconds into the clip of the shot's first frame
    fps: int
    width: int
    height: int
    shot_frames: int  # the shot's control clip: this many frames from `start` at `fps`
    # The shot frame this segment's frame 0 is (-1: a chained shot's first frame, which repeats
    # the previous shot's; it takes control frame 0).
    offset: int
    model: Any = None  # the depth or pose model's identity (engine.local_models.model_identity)
    # What the extraction code makes of the same inputs, so the segment key follows it too (a
    # segment made from an older extraction is never served).
    revision: int = EXTRACT_REVISION

    def clip_key(self, video_sha: str) -> str:
        """The cache key of the shot's extracted control clip: the source bytes and every
        setting that shapes its frames (not the strength, not the segment's offset)."""
        return content_key("control", {
            "video": video_sha, "kind": self.kind, "start": self.start, "fps": self.fps,
            "width": self.width, "height": self.height, "frames": self.shot_frames,
            "model": self.model, "revision": self.revision})

    def frame_indices(self, frames: int) -> list[int]:
        """The shot control frames of a segment of `frames` frames."""
        return [min(self.shot_frames - 1, max(0, self.offset + i)) for i in range(frames)]


def control_keys(plan: Any) -> list[str]:
    """Cache keys of the extracted control clips a RenderPlan uses (for cache maintenance)."""
    from stages.plan.keys import input_sha256

    keys = []
    for shot in plan.shots:
        job = next((j.control for j in shot.segments if j.control is not None), None)
        if job is not None:
            keys.append(job.clip_key(input_sha256(job.video)))
    return keys

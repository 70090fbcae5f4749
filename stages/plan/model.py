"""The plan's dataclasses: segment jobs, shot plans and the render plan.

Every field of `SegmentJob` is part of its content key unless the field says otherwise
(`metadata={"key": False}`, with a comment saying why). A field that shares a key entry with
others names the entry (`metadata={"key": "start"}`); how each entry is written is in
stages.plan.job_keys. A new field without metadata reaches the key by its own name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from engine.base import CameraState, LoraRef
from stages.control.job import ControlJob
from stages.plan.depth import DepthJob
from stages.plan.chaining import ChainSpec
from stages.post.chain import PostStep
from stages.render.overlap_join import OverlapParams
from stages.storyboard.schema import Output, Transition


def entry(name: str, **kwargs: Any) -> Any:
    """A field whose value feeds the key entry `name` (written in stages.plan.job_keys)."""
    return field(metadata={"key": name}, **kwargs)


def not_keyed(**kwargs: Any) -> Any:
    """A field that does not change the segment's pixels, so it stays out of its key."""
    return field(metadata={"key": False}, **kwargs)


@dataclass(frozen=True)
class SegmentRef:
    shot_id: str
    index: int

    def __str__(self) -> str:
        return f"{self.shot_id}[{self.index}]"


@dataclass(frozen=True)
class StartCondition:
    """How a segment's first frame is decided."""

    kind: str  # "none" | "image" | "chain" | "keyframe" (a generated keyframe: start_keyframe)
    image: Path | None = None
    upstream: SegmentRef | None = None


@dataclass(frozen=True)
class FrameRef:
    """A frame a job needs that may not exist before the render: an image file, the last frame
    of a segment, or frame 0 of a segment. Used for the shot's anchor (svi identity reference,
    colour-match reference) and for a generated transition's end frame."""

    kind: str  # "image" | "last_frame" | "first_frame"
    image: Path | None = None
    segment: SegmentRef | None = None


@dataclass(frozen=True)
class SegmentJob:
    # Both reach the key only as the labels an engine that draws them puts on the frames.
    shot_id: str = entry("labels")
    index: int = entry("labels")
    frames: int = entry("frames")
    fps: int = entry("fps")
    width: int = entry("width")
    height: int = entry("height")
    prompt: str = entry("prompt")
    negative: str = entry("negative")
    seed: int = entry("seed")
    start: StartCondition = entry("start")
    end_image: Path | None = entry("end")
    camera: tuple[CameraState, ...] = entry("camera")
    # seconds into the shot of this segment's first frame; it picks the part of an input video
    start_time: float = entry("video")
    key: str = not_keyed()  # the key itself
    params: dict[str, Any] = entry("params", default_factory=dict)  # engine knobs
    loras: tuple[LoraRef, ...] = entry("loras", default=())
    # v2v source / animate driving video (absolute paths); the segment uses the part from
    # `start_time` on, resampled to the plan's fps.
    source_video: Path | None = entry("video", default=None)
    driving_video: Path | None = entry("video", default=None)
    # "post": warp the generated frames along `camera` exactly
    camera_apply: str = entry("camera_apply", default="engine")
    # the planned key of the segment this one chains from
    upstream_key: str | None = entry("start", default=None)
    chain: ChainSpec = entry("chain", default=ChainSpec())
    anchor: FrameRef | None = entry("chain", default=None)  # svi conditioning, colour matching
    # The schedule time whose prompt this segment uses: the prompt itself is in the key.
    prompt_from: float | None = not_keyed(default=None)
    # A generated transition's end frame, when it is the next shot's generated first frame
    # (not an image file), and the frames at the end that repeat it (dropped from the clip
    # after generation, so they are the shot key's business, not the segment's).
    end_from: FrameRef | None = entry("end", default=None)
    trim_end: int = not_keyed(default=0)
    # The render profile its keys came from (stages.plan.profiles): what the profile sets is in
    # `params` and `loras`; its name alone changes no pixel.
    profile: str | None = not_keyed(default=None)
    bridge: bool = entry("bridge", default=False)  # a generated transition's clip
    # Cast (storyboard `cast:`): the names label the manifest; the pixels follow the members'
    # descriptions (as written; the prompt holds them expanded) and reference files (by bytes;
    # only planned for engines that take references). All default empty: no cast, same keys.
    cast: tuple[str, ...] = not_keyed(default=())
    descriptions: tuple[str, ...] = ()
    references: tuple[Path, ...] = ()
    # The keys of the generated keyframes (KeyframeJob) the segment starts / ends on.
    start_keyframe: str | None = None
    end_keyframe: str | None = None
    # The control video (storyboard `control:`): source, kind, strength, this segment's slice;
    # None (no control) stays out of the key. The depth model's folder is a local path (its
    # identity is in `control.model`), so it is not keyed.
    control: ControlJob | None = None
    control_model: Any = not_keyed(default=None)  # a folder, or engine.pose's PoseModels
    # The shot's depth for 2.5D camera moves (storyboard `depth:`, stages.plan.depth): a file's
    # bytes or the estimated image and model identity; None (no depth) stays out of the key.
    # The estimator's folder is a local path (its identity is in `depth.model`): not keyed.
    depth: DepthJob | None = None
    depth_model: Path | None = not_keyed(default=None)
    # An animate shot's pose (stages.plan.animate): with `pose.model` configured, the engine is
    # given the driving video's keypoints and draws the pose video from them. The model's
    # identity is keyed (None: the driving video is the pose video as given, keys unchanged);
    # its folders (engine.pose.estimate.PoseModels: model and detector) are local paths, not
    # keyed.
    pose: Any = None
    pose_model: Any = not_keyed(default=None)

    @property
    def ref(self) -> SegmentRef:
        return SegmentRef(self.shot_id, self.index)

    @property
    def label(self) -> str:
        return f"{self.shot_id}_{self.index}"

    @property
    def drop_first(self) -> bool:
        """A chained segment's first frames repeat or re-render its upstream's; the shot skips
        them (or, in overlap mode, joins them with the upstream's tail)."""
        return self.chain.lead > 0

    @property
    def clip_frames(self) -> int:
        """Frames this segment adds to its shot."""
        return self.frames - self.chain.lead - self.trim_end


@dataclass(frozen=True)
class KeyframeJob:
    """A generated start or end image (`image: {generate: ...}`), rendered by an image engine
    before the shot's segments; its key (stages.plan.keyframes.keyframe_key) is in the key of
    the segment that starts or ends on it."""

    shot_id: str
    which: str  # "start" | "end"
    engine: str  # the image engine's name (its identity is in the key)
    prompt: str  # `{name}` expanded
    negative: str
    seed: int
    width: int
    height: int
    params: dict[str, Any] = field(default_factory=dict)
    references: tuple[Path, ...] = ()  # cast references, for engines that take them
    cast: tuple[str, ...] = ()
    key: str = ""

    @property
    def label(self) -> str:
        """Its file name in the render folder's frames/, without .png."""
        return keyframe_label(self.shot_id, self.which)


def keyframe_label(shot_id: str, which: str) -> str:
    """A keyframe's name in the render folder's frames/ (without .png) and in progress lines:
    `<shot>_keyframe` and `<shot>_keyframe_end`. Start names end in `_keyframe` and end names in
    `_keyframe_end`, so no shot id can make one collide with another shot's (with
    `<shot>_end_keyframe`, shot x's end and shot x_end's start were the same file)."""
    return f"{shot_id}_keyframe" if which == "start" else f"{shot_id}_keyframe_end"


@dataclass
class ShotPlan:
    id: str
    segments: list[SegmentJob]
    transition: Transition
    include: bool  # False: rendered only because a selected shot chains from it
    post_frames: int = 0
    key: str = ""
    # overlap mode: how the overlapping frames are joined (stages.render.overlap_join.OverlapParams)
    overlap: OverlapParams | None = None
    # A generated transition (a first-last-frame clip from the previous shot's last frame to
    # the next shot's first), placed between the two shots in the episode.
    bridge: bool = False
    keyframes: list[KeyframeJob] = field(default_factory=list)  # rendered before its segments

    @property
    def frames(self) -> int:
        return sum(s.clip_frames for s in self.segments)


@dataclass
class RenderPlan:
    name: str
    storyboard_path: Path
    engine: dict[str, Any]
    fps: int
    width: int
    height: int
    post: list[PostStep]
    post_fps: float
    output: Output
    shots: list[ShotPlan]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the planner decided (prompt snapping)
    key: str = ""
    audio: Any = None  # stages.render.audio.AudioTrack: the soundtrack muxed into the episode
    # stages.audio.schedules.ReactivePlan: `audio.reactive`'s resolved schedules, or None
    reactive: Any = None

    def keyframes(self) -> Iterator[KeyframeJob]:
        for shot in self.shots:
            yield from shot.keyframes

    def segments(self) -> Iterator[SegmentJob]:
        """All jobs, upstreams before the jobs that chain from them."""
        for shot in self.shots:
            yield from shot.segments

    @property
    def output_fps(self) -> float:
        return self.output.fps or self.post_fps

    def included(self) -> list[ShotPlan]:
        return [s for s in self.shots if s.include]

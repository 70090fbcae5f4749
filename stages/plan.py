"""Planning: a validated storyboard becomes a RenderPlan, a DAG of segment jobs with content keys.

Segments of a shot chain in order (each starts from the previous one's last frame); a shot with
`start: chain` starts from the last frame of the shot before it. Every other shot is independent.
Each job's key hashes everything that determines its pixels, including its upstream's key, so an
edit re-renders exactly the segments it touches and those that chain from them.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from engine.base import CameraState, LoraRef
from stages.camera import camera_path
from stages.keys import content_key, file_sha256
from stages.post import PostStep, chain_fps, chain_frames_out
from stages.storyboard import GenerationKeys, Output, Segment, Shot, Transition, camera_apply
from stages.validate import ValidatedStoryboard, inherited, segment_seconds


@dataclass(frozen=True)
class SegmentRef:
    shot_id: str
    index: int

    def __str__(self) -> str:
        return f"{self.shot_id}[{self.index}]"


@dataclass(frozen=True)
class StartCondition:
    """How a segment's first frame is decided."""

    kind: str  # "none" | "image" | "chain"
    image: Path | None = None
    upstream: SegmentRef | None = None


@dataclass(frozen=True)
class SegmentJob:
    shot_id: str
    index: int
    frames: int
    fps: int
    width: int
    height: int
    prompt: str
    negative: str
    seed: int
    start: StartCondition
    end_image: Path | None
    camera: tuple[CameraState, ...]
    start_time: float  # seconds into the shot of this segment's first frame
    key: str
    params: dict[str, Any] = field(default_factory=dict)  # engine knobs, part of the key
    loras: tuple[LoraRef, ...] = ()
    # v2v source / animate driving video (absolute paths); the segment uses the part from
    # `start_time` on, resampled to the plan's fps.
    source_video: Path | None = None
    driving_video: Path | None = None
    camera_apply: str = "engine"  # "post": warp the generated frames along `camera` exactly
    upstream_key: str | None = None  # the planned key of the segment this one chains from

    @property
    def ref(self) -> SegmentRef:
        return SegmentRef(self.shot_id, self.index)

    @property
    def label(self) -> str:
        return f"{self.shot_id}_{self.index}"

    @property
    def drop_first(self) -> bool:
        """A chained segment's frame 0 repeats its upstream's last frame; the clip skips it."""
        return self.start.kind == "chain"

    @property
    def clip_frames(self) -> int:
        return self.frames - (1 if self.drop_first else 0)


@dataclass
class ShotPlan:
    id: str
    segments: list[SegmentJob]
    transition: Transition
    include: bool  # False: rendered only because a selected shot chains from it
    post_frames: int = 0
    key: str = ""

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
    key: str = ""
    audio: Any = None  # stages.audio.AudioTrack: the soundtrack muxed into the episode

    def segments(self) -> Iterator[SegmentJob]:
        """All jobs, upstreams before the jobs that chain from them."""
        for shot in self.shots:
            yield from shot.segments

    @property
    def output_fps(self) -> float:
        return self.output.fps or self.post_fps

    def included(self) -> list[ShotPlan]:
        return [s for s in self.shots if s.include]


# Generation keys that travel as engine params (the rest are files, handled on their own).
_PARAM_KEYS = tuple(k for k in GenerationKeys.model_fields if k != "loras")


def generation_params(base: dict[str, Any], *holders: Any) -> dict[str, Any]:
    """Engine config params overlaid with the storyboard's keys, innermost holder winning
    (holders: segment, shot, defaults)."""
    params = dict(base)
    for key in _PARAM_KEYS:
        value = inherited(key, *holders)
        if value is not None:
            params[key] = value
    return params


def derive_seed(base: int, shot_id: str, index: int) -> int:
    digest = hashlib.sha256(f"{base}:{shot_id}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def _explicit_frames(seg: Segment | None, shot: Shot, defaults) -> int | None:
    """`frames:` where the length is given as frames, by the same holder that segment_seconds
    takes the length from (a shot's duration beats a frames default, and so on)."""
    for holder in (seg, shot, defaults):
        if holder is None or (holder is shot and seg is not None and shot.segments):
            continue
        if holder.frames is not None:
            return holder.frames
        if holder.duration is not None:
            return None
    return None


def _segment_lengths(
    vs: ValidatedStoryboard, shot: Shot, chained: bool
) -> tuple[list[tuple[Segment | None, int]], list[str]]:
    """Frames per generation call: each storyboard segment snapped to the engine's frame rule,
    and split into equal chained pieces where it is longer than the engine's longest segment."""
    rule, longest, fps = vs.engine.frame_rule, vs.engine.max_frames, vs.fps
    defaults = vs.model.defaults
    warnings: list[str] = []
    pieces: list[tuple[Segment | None, int]] = []
    for i, seg in enumerate(shot.segments or [None]):
        where = f"shot {shot.id}" + (f" segment {i}" if shot.segments else "")
        explicit = _explicit_frames(seg, shot, defaults)
        if explicit is not None:
            wanted = explicit
        else:
            # A segment whose frame 0 repeats its upstream's last frame needs one frame extra.
            repeats = 1 if (chained or i > 0) else 0
            wanted = max(1, round(segment_seconds(seg, shot, defaults, fps) * fps)) + repeats
        count = 1 if wanted <= longest else math.ceil((wanted - 1) / (longest - 1))
        # Equal pieces whose total is nearest to `wanted` (ties go up): snap the exact length
        # per piece, not a rounded-up one (that could pick a whole frame-rule step too many).
        exact = (wanted - 1) / count + 1
        per = min(
            {min(rule.snap(n), longest) for n in (math.floor(exact), math.ceil(exact))},
            key=lambda n: (abs(n - exact), -n),
        )
        pieces += [(seg, per)] * count
        got = count * (per - 1) + 1
        if count > 1:
            warnings.append(
                f"{where}: {wanted} frames is more than one {vs.engine.name!r} segment "
                f"({longest} frames); rendering {count} chained segments of {per} frames"
            )
        elif got != wanted:
            warnings.append(
                f"{where}: {wanted} frames snapped to {got} (engine {vs.engine.name!r} needs "
                f"{rule.describe()} frames per segment)"
            )
    return pieces, warnings


def _image_path(vs: ValidatedStoryboard, relative: str | None) -> Path | None:
    return None if relative is None else vs.image_path(relative)


def _needed_shots(vs: ValidatedStoryboard) -> set[str]:
    """Selected shots plus every shot they chain from, transitively."""
    order = [s.id for s in vs.model.shots]
    needed = set(vs.selected)
    for i in range(len(order) - 1, 0, -1):
        shot = vs.model.shots[i]
        if order[i] in needed and shot.start == "chain":
            needed.add(order[i - 1])
    return needed


def build_plan(
    vs: ValidatedStoryboard, engine_identity: dict[str, Any], params: dict[str, Any] | None = None
) -> RenderPlan:
    """Plan every segment of the shots `vs` selects (and the shots they chain from).

    `params` are engine knobs from the config (the preview's `motion`, ...): they change pixels,
    so they are part of every key.
    """
    params = dict(params or {})
    defaults = vs.model.defaults
    needed = _needed_shots(vs)
    selected = set(vs.selected)
    image_hashes: dict[Path, str] = {}

    def image_sha(path: Path | None) -> str | None:
        if path is None:
            return None
        if path not in image_hashes:
            image_hashes[path] = file_sha256(path)
        return image_hashes[path]

    shots: list[ShotPlan] = []
    warnings: list[str] = []
    previous_last: SegmentJob | None = None
    for shot in vs.model.shots:
        chained = shot.start == "chain"
        pieces, shot_warnings = _segment_lengths(vs, shot, chained)
        if shot.id not in needed:
            previous_last = None
            continue
        warnings += shot_warnings  # only about shots this plan renders
        # Time runs from the shot's first frame to its last; chained segments share a frame.
        total_frames = sum(n for _, n in pieces) - (len(pieces) - 1) - (1 if chained else 0)
        shot_seconds = max(total_frames - 1, 0) / vs.fps
        camera = shot.camera if shot.camera is not None else (defaults.camera if defaults else None)
        first_image = _image_path(vs, inherited("image", shot, defaults)) if not chained else None
        shot_end = _image_path(vs, inherited("end_image", shot, defaults))
        jobs: list[SegmentJob] = []
        frame_cursor = -1 if chained else 0  # a chained shot's frame 0 is the upstream's last
        for index, (seg, frames) in enumerate(pieces):
            last_piece_of_seg = index == len(pieces) - 1 or pieces[index + 1][0] is not seg
            if jobs:
                start = StartCondition("chain", upstream=jobs[-1].ref)
                upstream_key = jobs[-1].key
            elif chained and previous_last is not None:
                start = StartCondition("chain", upstream=previous_last.ref)
                upstream_key = previous_last.key
            elif first_image is not None:
                start, upstream_key = StartCondition("image", image=first_image), None
            else:
                start, upstream_key = StartCondition("none"), None
            end_image = _image_path(vs, seg.end_image) if seg is not None and seg.end_image else None
            if end_image is None and index == len(pieces) - 1:
                end_image = shot_end
            if not last_piece_of_seg:
                end_image = None  # a split segment's end image belongs to its last piece
            seed = inherited("seed", seg) if seg is not None else None
            if seed is None:
                seed = (shot.seed + index) if shot.seed is not None else derive_seed(
                    vs.model.seed, shot.id, index)
            prompt = inherited("prompt", seg, shot, defaults) or ""
            negative = inherited("negative", seg, shot, defaults) or ""
            path = camera_path(camera, frame_cursor, frames, vs.fps, shot_seconds)
            holders = (seg, shot, defaults)
            seg_params = generation_params(params, *holders)
            loras = tuple(
                LoraRef(str(_image_path(vs, lora.path)), lora.strength, lora.strength_2)
                for lora in (inherited("loras", *holders) or []))
            source = _image_path(vs, inherited("source_video", shot, defaults))
            driving = _image_path(vs, inherited("driving_video", shot, defaults))
            key = content_key("segment", {
                "engine": engine_identity,
                "prompt": prompt, "negative": negative, "seed": seed,
                "width": vs.width, "height": vs.height, "frames": frames, "fps": vs.fps,
                "camera": [c.as_tuple() for c in path],
                "start": {"kind": start.kind, "image": image_sha(start.image),
                          "upstream": upstream_key},
                "end_image": image_sha(end_image),
                "params": seg_params,
                "labels": (shot.id, index) if vs.engine.draws_labels else None,
                "loras": [(file_sha256(Path(x.path)), x.strength, x.strength_2) for x in loras],
                "source_video": image_sha(source), "driving_video": image_sha(driving),
                "video_offset": round(frame_cursor / vs.fps, 6) if (source or driving) else None,
                "camera_apply": camera_apply(camera),
            })
            jobs.append(SegmentJob(
                shot_id=shot.id, index=index, frames=frames, fps=vs.fps, width=vs.width,
                height=vs.height, prompt=prompt, negative=negative, seed=seed, start=start,
                end_image=end_image, camera=path, start_time=frame_cursor / vs.fps, key=key,
                params=seg_params, loras=loras, source_video=source, driving_video=driving,
                camera_apply=camera_apply(camera), upstream_key=upstream_key,
            ))
            frame_cursor += frames - 1
        plan_shot = ShotPlan(
            id=shot.id, segments=jobs,
            transition=inherited("transition", shot, defaults) or Transition(),
            include=shot.id in selected,
        )
        plan_shot.post_frames = chain_frames_out(vs.post, plan_shot.frames, vs.fps)
        plan_shot.key = content_key("shot", {
            "segments": [j.key for j in jobs],
            "drop_first": [j.drop_first for j in jobs],
            "post": [step.as_dict() for step in vs.post],
        })
        shots.append(plan_shot)
        previous_last = jobs[-1]

    plan = RenderPlan(
        name=vs.name, storyboard_path=vs.path, engine=engine_identity, fps=vs.fps,
        width=vs.width, height=vs.height, post=vs.post, post_fps=chain_fps(vs.post, vs.fps),
        output=vs.output, shots=shots, warnings=vs.warnings + warnings,
        audio=getattr(vs, "audio", None),
    )
    episode = {
        "shots": [(s.key, s.transition.model_dump()) for s in plan.included()],
        "output": plan.output.model_dump(), "fps": plan.output_fps,
    }
    if plan.audio is not None:  # only then: episodes without audio keep their keys
        episode["audio"] = plan.audio.key_dict()
    plan.key = content_key("episode", episode)
    return plan

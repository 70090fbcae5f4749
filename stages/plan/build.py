"""Planning: a validated storyboard becomes a RenderPlan, a DAG of segment jobs with content keys.

Segments of a shot chain in order (each starts from the previous one's last frame); a shot with
`start: chain` starts from the last frame of the shot before it. Every other shot is independent.
Each job's key hashes everything that determines its pixels, including its upstream's key, so an
edit re-renders exactly the segments it touches and those that chain from them.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from engine.base import CameraState, LoraRef
from stages.plan.camera import camera_path
from stages.plan.keys import content_key, file_sha256
from stages.plan.chaining import ChainSpec, chain_lead, chain_spec, overlap_params
from stages.render.overlap_join import OverlapParams
from stages.post.chain import PostStep, chain_fps, chain_frames_out
from stages.plan.profiles import Profile, ProfileChoice, effective, resolve_key
from stages.storyboard.schema import (
    Chain,
    GenerationKeys,
    Output,
    Segment,
    Shot,
    Transition,
    bridge_id,
    camera_apply,
)
from stages.storyboard.validate import ValidatedStoryboard, inherited, segment_seconds


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
class FrameRef:
    """A frame a job needs that may not exist before the render: an image file, the last frame
    of a segment, or frame 0 of a segment. Used for the shot's anchor (svi identity reference,
    colour-match reference) and for a generated transition's end frame."""

    kind: str  # "image" | "last_frame" | "first_frame"
    image: Path | None = None
    segment: SegmentRef | None = None


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
    chain: ChainSpec = ChainSpec()
    anchor: FrameRef | None = None  # needed by svi conditioning and colour matching
    prompt_from: float | None = None  # the schedule time whose prompt this segment uses
    # A generated transition's end frame, when it is the next shot's generated first frame
    # (not an image file), and the frames at the end that repeat it (dropped from the clip).
    end_from: FrameRef | None = None
    trim_end: int = 0
    profile: str | None = None  # the render profile its keys came from (stages.plan.profiles)

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


def generation_params(base: dict[str, Any], holders: Sequence[Any],
                      levels: Sequence[Profile | None] = ()) -> dict[str, Any]:
    """Engine config params overlaid with the storyboard's keys and profiles by the precedence
    rule of stages.plan.profiles (holders: segment, shot, defaults; levels: the profile declared at
    each of those levels, then the storyboard's)."""
    params = dict(base)
    for key in _PARAM_KEYS:
        value = resolve_key(key, holders, levels)
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
    vs: ValidatedStoryboard, shot: Shot, chained: bool, lead: int
) -> tuple[list[tuple[Segment | None, int]], list[str]]:
    """Frames per generation call: each storyboard segment snapped to the engine's frame rule,
    and split into equal chained pieces where it is longer than the engine's longest segment.
    `lead`: frames a chained piece shares with the piece before it (1 for last_frame chaining,
    the overlap in overlap mode, ...); the shot's first piece shares one with the shot before
    it when the shot chains, else none."""
    rule, longest, fps = vs.engine.frame_rule, vs.engine.max_frames, vs.fps
    defaults = vs.model.defaults
    warnings: list[str] = []
    pieces: list[tuple[Segment | None, int]] = []
    for i, seg in enumerate(shot.segments or [None]):
        where = f"shot {shot.id}" + (f" segment {i}" if shot.segments else "")
        explicit = _explicit_frames(seg, shot, defaults)
        first_lead = (1 if chained else 0) if i == 0 else lead
        if explicit is not None:
            wanted = explicit
        else:
            # A segment whose first frames repeat its upstream's needs that many frames extra.
            wanted = max(1, round(segment_seconds(seg, shot, defaults, fps) * fps)) + first_lead
        # Pieces after the first add `longest - lead` new frames each.
        count = 1 if wanted <= longest else math.ceil((wanted - longest) / (longest - lead)) + 1
        # Equal pieces whose coverage is nearest to `wanted` (ties go up): snap the exact length
        # per piece, not a rounded-up one (that could pick a whole frame-rule step too many).
        exact = (wanted + (count - 1) * lead) / count
        per = min(
            {min(rule.snap(n), longest) for n in (math.floor(exact), math.ceil(exact))},
            key=lambda n: (abs(n - exact), -n),
        )
        pieces += [(seg, per)] * count
        got = per + (count - 1) * (per - lead)
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


def chain_of(vs: ValidatedStoryboard, shot: Shot) -> Chain:
    defaults = vs.model.defaults
    return inherited("chain", shot, defaults) or Chain()


def scheduled_prompts(shot: Shot, starts: list[float]) -> tuple[list[tuple[float, str] | None],
                                                                 list[str]]:
    """The schedule entry each piece uses (`prompts: {0s: ..., 4s: ...}`): every time snaps to
    the nearest piece start (`starts`, seconds), and applies from there to the next entry.
    Returns one (time, prompt) or None per piece, and a note per entry on where it landed."""
    if not shot.prompts:
        return [None] * len(starts), []
    chosen: list[tuple[float, str] | None] = [None] * len(starts)
    notes = []
    landed: dict[int, float] = {}
    for at, prompt in shot.prompts.items():
        piece = min(range(len(starts)), key=lambda i: (abs(starts[i] - at), i))
        if piece in landed:
            notes.append(f"shot {shot.id}: prompt at {at:g}s snaps to the same segment boundary "
                         f"({starts[piece]:.2f}s) as the one at {landed[piece]:g}s; it replaces "
                         f"it (segments are {_spacing(starts)} long)")
        else:
            where = "exact" if abs(starts[piece] - at) < 1e-6 else f"snapped from {at:g}s"
            notes.append(f"shot {shot.id}: prompt at {at:g}s starts at segment {piece} "
                         f"({starts[piece]:.2f}s, {where})")
        landed[piece] = at
        for i in range(piece, len(starts)):
            chosen[i] = (at, prompt)
    return chosen, notes


def _spacing(starts: list[float]) -> str:
    if len(starts) < 2:
        return "one segment"
    return f"{starts[1] - starts[0]:.2f}s"


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


def _bridge_end(vs: ValidatedStoryboard, after: ShotPlan) -> tuple[Path | None, FrameRef | None]:
    """The next shot's first frame: its start image, the frame it chains from, or frame 0 of
    its first segment once rendered."""
    first = after.segments[0]
    if first.start.kind == "image":
        return first.start.image, None
    if first.start.kind == "chain":
        return None, FrameRef("last_frame", segment=first.start.upstream)
    return None, FrameRef("first_frame", segment=first.ref)


def _with_bridges(vs: ValidatedStoryboard, shots: list[ShotPlan], engine_identity: dict,
                  params: dict[str, Any], image_sha, profiles: ProfileChoice) -> list[ShotPlan]:
    """Insert a bridge shot after every included shot whose transition is `generated`: one
    first-last-frame segment from its last frame to the next included shot's first frame,
    `duration` long plus the two frames it starts and ends on (both dropped from the clip)."""
    included = [s for s in shots if s.include]
    following = {a.id: b for a, b in zip(included, included[1:])}
    out: list[ShotPlan] = []
    defaults = vs.model.defaults
    rule, longest = vs.engine.frame_rule, vs.engine.max_frames
    for shot in shots:
        out.append(shot)
        after = following.get(shot.id) if shot.include else None
        if after is None or shot.transition.type != "generated":
            continue
        upstream, transition = shot.segments[-1], shot.transition
        frames = min(rule.snap(max(1, round(transition.duration * vs.fps)) + 2), longest)
        end_image, end_from = _bridge_end(vs, after)
        name = bridge_id(shot.id, after.id)
        prompt = transition.prompt or after.segments[0].prompt
        negative = (defaults.negative if defaults else None) or ""
        seed = derive_seed(vs.model.seed, name, 0)
        levels = profiles.levels(None, defaults, vs.model.profile)
        job_params = generation_params(params, (None, None, defaults), levels)
        profile = effective(levels)
        end_source = (None if end_from is None else
                      next(j.key for s in shots for j in s.segments if j.ref == end_from.segment))
        key = content_key("segment", {
            "engine": engine_identity, "bridge": True,
            "prompt": prompt, "negative": negative, "seed": seed,
            "width": vs.width, "height": vs.height, "frames": frames, "fps": vs.fps,
            "start": {"kind": "chain", "upstream": upstream.key},
            "end": {"image": image_sha(end_image),
                    "segment": None if end_from is None else [end_from.kind, end_source]},
            "params": job_params,
            "labels": (name, 0) if vs.engine.draws_labels else None,
            # Only when a profile adds LoRAs, so bridges without one keep their keys.
            **({"loras": [(file_sha256(Path(x.path)), x.strength, x.strength_2)
                          for x in profile.loras]} if profile and profile.loras else {}),
        })
        job = SegmentJob(
            shot_id=name, index=0, frames=frames, fps=vs.fps, width=vs.width,
            height=vs.height, prompt=prompt, negative=negative, seed=seed,
            start=StartCondition("chain", upstream=upstream.ref), end_image=end_image,
            camera=(), start_time=0.0, key=key, params=job_params,
            upstream_key=upstream.key, chain=ChainSpec(lead=1), end_from=end_from, trim_end=1,
            loras=profile.loras if profile else (), profile=profile.name if profile else None,
        )
        bridge = ShotPlan(id=name, segments=[job], transition=Transition(), include=True,
                          bridge=True)
        bridge.post_frames = chain_frames_out(vs.post, bridge.frames, vs.fps)
        bridge.key = content_key("shot", {"segments": [key], "trim": [1, 1],
                                          "post": [step.as_dict() for step in vs.post]})
        out.append(bridge)
    return out


def _anchor(vs: ValidatedStoryboard, chain: Chain, first_image: Path | None,
            upstream: SegmentJob | None, first_job: SegmentJob | None) -> FrameRef | None:
    """The shot's anchor: `chain.anchor`, else its start image, else the frame it starts from
    (the last frame of the shot it chains from, or frame 0 of its first segment)."""
    if chain.anchor is not None:
        return FrameRef("image", image=vs.image_path(chain.anchor))
    if first_image is not None:
        return FrameRef("image", image=first_image)
    if upstream is not None:
        return FrameRef("last_frame", segment=upstream.ref)
    if first_job is not None:
        return FrameRef("first_frame", segment=first_job.ref)
    return None


def _anchor_identity(anchor: FrameRef | None, image_sha, jobs: list[SegmentJob],
                     upstream: SegmentJob | None) -> Any:
    if anchor is None:
        return None
    if anchor.kind == "image":
        return {"image": image_sha(anchor.image)}
    source = upstream if anchor.kind == "last_frame" else jobs[0]
    return {anchor.kind: source.key}


def build_plan(
    vs: ValidatedStoryboard, engine_identity: dict[str, Any], params: dict[str, Any] | None = None,
    profiles: ProfileChoice | None = None,
) -> RenderPlan:
    """Plan every segment of the shots `vs` selects (and the shots they chain from).

    `params` are engine knobs from the config (the preview's `motion`, ...): they change pixels,
    so they are part of every key.
    """
    params = dict(params or {})
    profiles = profiles or ProfileChoice()
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
    notes: list[str] = []
    for shot in vs.model.shots:
        chained = shot.start == "chain"
        chain = chain_of(vs, shot)
        lead = chain_lead(chain, vs.engine)
        pieces, shot_warnings = _segment_lengths(vs, shot, chained, lead)
        if shot.id not in needed:
            previous_last = None
            continue
        warnings += shot_warnings  # only about shots this plan renders
        leads = [(1 if chained else 0) if i == 0 else lead for i in range(len(pieces))]
        # Time runs from the shot's first frame to its last; chained pieces share `lead` frames.
        total_frames = sum(n - skip for (_, n), skip in zip(pieces, leads))
        shot_seconds = max(total_frames - 1, 0) / vs.fps
        camera = shot.camera if shot.camera is not None else (defaults.camera if defaults else None)
        first_image = _image_path(vs, inherited("image", shot, defaults)) if not chained else None
        shot_end = _image_path(vs, inherited("end_image", shot, defaults))
        # Where each piece's first frame sits in the shot (frame 0 of a chained piece repeats
        # or re-renders its upstream's frames), and when its new frames start.
        cursors, next_frame = [], 0
        for (_, frames), skip in zip(pieces, leads):
            cursors.append(next_frame - skip)
            next_frame = cursors[-1] + frames
        starts = [max(0, c + skip) / vs.fps for c, skip in zip(cursors, leads)]
        schedule, shot_notes = scheduled_prompts(shot, starts)
        notes += shot_notes
        jobs: list[SegmentJob] = []
        for index, (seg, frames) in enumerate(pieces):
            frame_cursor = cursors[index]
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
            scheduled = schedule[index] if seg is None or seg.prompt is None else None
            prompt = (scheduled[1] if scheduled else inherited("prompt", seg, shot, defaults)) or ""
            negative = inherited("negative", seg, shot, defaults) or ""
            path = camera_path(camera, frame_cursor, frames, vs.fps, shot_seconds)
            holders = (seg, shot, defaults)
            levels = profiles.levels(shot, defaults, vs.model.profile)
            seg_params = generation_params(params, holders, levels)
            profile = effective(levels)
            # A profile's LoRAs (a step-distilled LoRA) come with the storyboard's, not instead.
            loras = (profile.loras if profile else ()) + tuple(
                LoraRef(str(_image_path(vs, lora.path)), lora.strength, lora.strength_2)
                for lora in (inherited("loras", *holders) or []))
            # An input video the engine ignores is never opened (nor hashed into the key).
            source = _image_path(vs, inherited("source_video", shot, defaults)) \
                if "source_video" in vs.engine.honours else None
            driving = _image_path(vs, inherited("driving_video", shot, defaults)) \
                if "driving_video" in vs.engine.honours else None
            spec = chain_spec(chain, leads[index], within_shot=bool(jobs))
            anchor = _anchor(vs, chain, first_image, previous_last if chained else None,
                             jobs[0] if jobs else None) \
                if (spec.color_match == "anchor" or spec.conditioning == "svi") else None
            fields = {
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
            }
            if spec != ChainSpec(mode=spec.mode, lead=spec.lead):
                # Only then: plain last-frame chaining keeps the keys it always had.
                fields["chain"] = spec.key_dict()
                fields["anchor"] = _anchor_identity(anchor, image_sha, jobs, previous_last)
            jobs.append(SegmentJob(
                shot_id=shot.id, index=index, frames=frames, fps=vs.fps, width=vs.width,
                height=vs.height, prompt=prompt, negative=negative, seed=seed, start=start,
                end_image=end_image, camera=path, start_time=frame_cursor / vs.fps,
                key=content_key("segment", fields),
                params=seg_params, loras=loras, source_video=source, driving_video=driving,
                camera_apply=camera_apply(camera), upstream_key=upstream_key,
                chain=spec, anchor=anchor, prompt_from=scheduled[0] if scheduled else None,
                profile=profile.name if profile else None,
            ))
        plan_shot = ShotPlan(
            id=shot.id, segments=jobs,
            transition=inherited("transition", shot, defaults) or Transition(),
            include=shot.id in selected,
            overlap=overlap_params(chain) if chain.mode == "overlap" else None,
        )
        plan_shot.post_frames = chain_frames_out(vs.post, plan_shot.frames, vs.fps)
        shot_fields = {
            "segments": [j.key for j in jobs],
            "drop_first": [j.drop_first for j in jobs],
            "post": [step.as_dict() for step in vs.post],
        }
        if plan_shot.overlap is not None or any(j.chain.lead > 1 for j in jobs):
            shot_fields["join"] = {"leads": [j.chain.lead for j in jobs],
                                   "blend": [j.chain.blend for j in jobs],
                                   "overlap": asdict(plan_shot.overlap) if plan_shot.overlap
                                   else None}
        plan_shot.key = content_key("shot", shot_fields)
        shots.append(plan_shot)
        previous_last = jobs[-1]

    shots = _with_bridges(vs, shots, engine_identity, params, image_sha, profiles)
    plan = RenderPlan(
        name=vs.name, storyboard_path=vs.path, engine=engine_identity, fps=vs.fps,
        width=vs.width, height=vs.height, post=vs.post, post_fps=chain_fps(vs.post, vs.fps),
        output=vs.output, shots=shots, warnings=vs.warnings + warnings, notes=notes,
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

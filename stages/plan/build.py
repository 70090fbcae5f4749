"""Planning: a validated storyboard becomes a RenderPlan, a DAG of segment jobs with content keys.

Segments of a shot chain in order (each starts from the previous one's last frame); a shot with
`start: chain` starts from the last frame of the shot before it. Every other shot is independent.
Each job's key hashes everything that determines its pixels, including its upstream's key, so an
edit re-renders exactly the segments it touches and those that chain from them.

What a shot and its segments mean once `defaults:` apply comes from the storyboard's resolver
(stages.storyboard.resolve); the key comes from the job's fields (stages.plan.job_keys). The
plan's dataclasses live in stages.plan.model and are importable from here too.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from engine.base import LoraRef
from stages.control.plan import control_job, control_model
from stages.plan.animate import animate_pose, cast_reference, is_animate, planned_shot
from stages.plan.bridges import with_bridges
from stages.audio.schedules import ReactivePlan, reactive_plan
from stages.plan.camera import camera_path
from stages.plan.chaining import chain_lead, chain_spec, overlap_params
from stages.plan.depth import depth_job, depth_model_folder
from stages.plan.inputs import derive_seed, generation_params
from stages.plan.job_keys import KeyContext
from stages.plan.keys import content_key, file_sha256
from stages.plan.keyframes import KeyframeEngines, cast_inputs, plan_keyframes, seed_base
from stages.plan.model import (
    FrameRef,
    KeyframeJob,
    RenderPlan,
    SegmentJob,
    SegmentRef,
    ShotPlan,
    StartCondition,
)
from stages.plan.profiles import ProfileChoice, effective
from stages.plan.timing import scheduled_prompts, segment_lengths
from stages.post.chain import chain_fps, chain_frames_out
from stages.storyboard.resolve import ResolvedShot, resolve_shot
from stages.storyboard.cast import expand
from stages.storyboard.schema import Chain, Shot, Transition, image_file
from stages.storyboard.schema.camera import camera_apply
from stages.storyboard.validate import ValidatedStoryboard

__all__ = [
    "FrameRef", "RenderPlan", "SegmentJob", "SegmentRef", "ShotPlan", "StartCondition",
    "build_plan", "chain_of", "derive_seed", "generation_params", "scheduled_prompts",
]


def chain_of(vs: ValidatedStoryboard, shot: Shot) -> Chain:
    return resolve_shot(shot, vs.model.defaults).chain or Chain()


def _image_path(vs: ValidatedStoryboard, relative: str | None) -> Path | None:
    return None if relative is None else vs.image_path(relative)


def _needed_shots(vs: ValidatedStoryboard) -> set[str]:
    """Selected shots plus every shot they chain from, transitively."""
    order = [s.id for s in vs.model.shots]
    needed = set(vs.selected)
    for i in range(len(order) - 1, 0, -1):
        shot = vs.model.shots[i]
        rs = planned_shot(vs.engine, resolve_shot(shot, vs.model.defaults))
        if order[i] in needed and rs.chained:
            needed.add(order[i - 1])
    return needed


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


def _shot_jobs(vs: ValidatedStoryboard, rs: ResolvedShot, pieces, chain: Chain, lead: int,
               previous_last: SegmentJob | None, ctx: KeyContext, params: dict[str, Any],
               profiles: ProfileChoice, keyframes: dict[str, KeyframeJob],
               reactive: ReactivePlan | None = None
               ) -> tuple[list[SegmentJob], list[str]]:
    """The jobs of one shot, keyed, and the planner's notes on its prompt schedule."""
    shot, defaults, chained = rs.shot, rs.defaults, rs.chained
    leads = [(1 if chained else 0) if i == 0 else lead for i in range(len(pieces))]
    # Time runs from the shot's first frame to its last; chained pieces share `lead` frames.
    total_frames = sum(n - skip for (_, n), skip in zip(pieces, leads))
    shot_seconds = max(total_frames - 1, 0) / vs.fps
    camera = rs.camera
    first_image = _image_path(vs, image_file(rs.image)) if not chained else None
    shot_end = _image_path(vs, image_file(rs.end_image))
    cast = vs.model.cast
    names, descriptions, references = cast_inputs(vs, rs, vs.engine.max_references > 0)
    base_seed = seed_base(vs, rs)
    start_kf, end_kf = keyframes.get("start"), keyframes.get("end")
    if first_image is None and start_kf is None and is_animate(vs.engine, rs):
        # The character to animate: the shot's image, else its first cast member's first
        # reference (stages.plan.animate); for every window of the shot.
        first_image = cast_reference(vs, rs)
    # Where each piece's first frame sits in the shot (frame 0 of a chained piece repeats
    # or re-renders its upstream's frames), and when its new frames start.
    cursors, next_frame = [], 0
    for (_, frames), skip in zip(pieces, leads):
        cursors.append(next_frame - skip)
        next_frame = cursors[-1] + frames
    starts = [max(0, c + skip) / vs.fps for c, skip in zip(cursors, leads)]
    schedule, notes = scheduled_prompts(shot, starts)
    levels = profiles.levels(shot, defaults, vs.model.profile)
    profile = effective(levels)
    # An input video the engine ignores is never opened (nor hashed into the key).
    source = _image_path(vs, rs.source_video) if "source_video" in vs.engine.honours else None
    driving = _image_path(vs, rs.driving_video) if "driving_video" in vs.engine.honours else None
    pose, pose_model = animate_pose(vs, vs.engine, rs)
    # Per shot: the depth (None without `depth:`: keys unchanged).
    depth = depth_job(vs, rs)
    depth_folder = depth_model_folder(vs, depth)
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
        elif start_kf is not None:
            start, upstream_key = StartCondition("keyframe"), None
        else:
            start, upstream_key = StartCondition("none"), None
        end_image = _image_path(vs, seg.end_image) if seg.end_image else None
        if end_image is None and index == len(pieces) - 1:
            end_image = shot_end
        if not last_piece_of_seg:
            end_image = None  # a split segment's end image belongs to its last piece
        end_keyframe = end_kf.key if end_kf is not None and index == len(pieces) - 1 \
            and end_image is None else None
        seed = seg.seed
        if seed is None:
            seed = (shot.seed + index) if shot.seed is not None else derive_seed(
                base_seed, shot.id, index)
        scheduled = schedule[index] if seg.scheduled else None
        prompt = expand((scheduled[1] if scheduled else seg.prompt) or "", cast)
        # A profile's LoRAs (a step-distilled LoRA) come with the storyboard's, not instead.
        loras = (profile.loras if profile else ()) + tuple(
            LoraRef(str(_image_path(vs, lora.path)), lora.strength, lora.strength_2)
            for lora in (seg.loras or []))
        spec = chain_spec(chain, leads[index], within_shot=bool(jobs))
        anchor = _anchor(vs, chain, first_image, previous_last if chained else None,
                         jobs[0] if jobs else None) \
            if (spec.color_match == "anchor" or spec.conditioning == "svi") else None
        states = camera_path(camera, frame_cursor, frames, vs.fps, shot_seconds)
        control = control_job(vs, rs, frame_cursor, total_frames)
        seg_params = generation_params(params, seg.holders, levels)
        if reactive is not None:  # audio.reactive: values add to the storyboard's
            states = reactive.camera(shot.id, states, frame_cursor)
            seg_params = reactive.params(shot.id, index, frame_cursor, frames, seg_params)
        job = SegmentJob(
            shot_id=shot.id, index=index, frames=frames, fps=vs.fps, width=vs.width,
            height=vs.height, prompt=prompt, negative=expand(seg.negative, cast) or "", seed=seed,
            start=start, end_image=end_image,
            camera=states, start_time=frame_cursor / vs.fps, key="",
            params=seg_params, loras=loras,
            source_video=source, driving_video=driving, camera_apply=camera_apply(camera),
            upstream_key=upstream_key, chain=spec, anchor=anchor,
            prompt_from=scheduled[0] if scheduled else None,
            profile=profile.name if profile else None,
            cast=names, descriptions=descriptions, references=references,
            start_keyframe=start_kf.key if start.kind == "keyframe" else None,
            end_keyframe=end_keyframe,
            control=control, control_model=control_model(vs, control),
            depth=depth, depth_model=depth_folder, pose=pose, pose_model=pose_model,
        )
        jobs.append(ctx.add(job))
    return jobs, notes


def _shot_key(plan_shot: ShotPlan, post) -> str:
    jobs = plan_shot.segments
    fields: dict[str, Any] = {
        "segments": [j.key for j in jobs],
        "drop_first": [j.drop_first for j in jobs],
        "post": [step.as_dict() for step in post],
    }
    if plan_shot.overlap is not None or any(j.chain.lead > 1 for j in jobs):
        # Only then: shots chained by last frame keep the keys they always had.
        fields["join"] = {"leads": [j.chain.lead for j in jobs],
                          "blend": [j.chain.blend for j in jobs],
                          "overlap": asdict(plan_shot.overlap) if plan_shot.overlap else None}
    return content_key("shot", fields)


def build_plan(
    vs: ValidatedStoryboard, engine_identity: dict[str, Any], params: dict[str, Any] | None = None,
    profiles: ProfileChoice | None = None, keyframe_engines: KeyframeEngines | None = None,
) -> RenderPlan:
    """Plan every segment of the shots `vs` selects (and the shots they chain from).

    `params` are engine knobs from the config (the preview's `motion`, ...): they change pixels,
    so they are part of every key. `keyframe_engines`: name -> (identity, params) of each
    image engine that generates keyframes (stages.plan.keyframes.keyframe_engine_names).
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

    ctx = KeyContext(engine=engine_identity, draws_labels=vs.engine.draws_labels,
                     file_sha=image_sha)
    shots: list[ShotPlan] = []
    warnings: list[str] = []
    previous_last: SegmentJob | None = None
    notes: list[str] = []
    reactive = reactive_plan(vs)  # None unless the storyboard has `audio.reactive`
    for shot in vs.model.shots:
        rs = planned_shot(vs.engine, resolve_shot(shot, defaults))
        chain = rs.chain or Chain()
        lead = chain_lead(chain, vs.engine)
        pieces, shot_warnings = segment_lengths(vs, rs, lead)
        if shot.id not in needed:
            previous_last = None
            continue
        warnings += shot_warnings  # only about shots this plan renders
        keyframes = plan_keyframes(vs, rs, keyframe_engines or {}, image_sha)
        jobs, shot_notes = _shot_jobs(vs, rs, pieces, chain, lead, previous_last, ctx, params,
                                      profiles, keyframes, reactive)
        notes += shot_notes
        plan_shot = ShotPlan(
            id=shot.id, segments=jobs, transition=rs.transition or Transition(),
            include=shot.id in selected,
            overlap=overlap_params(chain) if chain.mode == "overlap" else None,
            keyframes=list(keyframes.values()),
        )
        plan_shot.post_frames = chain_frames_out(vs.post, plan_shot.frames, vs.fps)
        plan_shot.key = _shot_key(plan_shot, vs.post)
        shots.append(plan_shot)
        previous_last = jobs[-1]

    shots = with_bridges(vs, shots, ctx, params, profiles)
    plan = RenderPlan(
        name=vs.name, storyboard_path=vs.path, engine=engine_identity, fps=vs.fps,
        width=vs.width, height=vs.height, post=vs.post, post_fps=chain_fps(vs.post, vs.fps),
        output=vs.output, shots=shots, warnings=vs.warnings + warnings, notes=notes,
        audio=getattr(vs, "audio", None), reactive=reactive,
    )
    episode = {
        "shots": [(s.key, s.transition.model_dump()) for s in plan.included()],
        "output": plan.output.model_dump(), "fps": plan.output_fps,
    }
    if plan.audio is not None:  # only then: episodes without audio keep their keys
        episode["audio"] = plan.audio.key_dict()
    if reactive is not None:  # only then: the colour grade follows the analysis
        episode["audio_reactive"] = reactive.key_dict()
    plan.key = content_key("episode", episode)
    return plan

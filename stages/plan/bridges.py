"""Generated transitions: a first-last-frame clip planned as a shot of its own ("bridge")
between two included shots, from the first one's last frame to the next one's first frame."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stages.plan.chaining import ChainSpec
from stages.plan.inputs import derive_seed, generation_params
from stages.plan.job_keys import KeyContext
from stages.plan.keys import content_key
from stages.plan.model import FrameRef, SegmentJob, ShotPlan, StartCondition
from stages.plan.profiles import ProfileChoice, effective
from stages.post.chain import chain_frames_out
from stages.storyboard.cast import expand
from stages.storyboard.schema import Transition, bridge_id


def _bridge_end(after: ShotPlan) -> tuple[Path | None, FrameRef | None]:
    """The next shot's first frame: its start image, the frame it chains from, or frame 0 of
    its first segment once rendered."""
    first = after.segments[0]
    if first.start.kind == "image":
        return first.start.image, None
    if first.start.kind == "chain":
        return None, FrameRef("last_frame", segment=first.start.upstream)
    return None, FrameRef("first_frame", segment=first.ref)


def bridge_frames(vs: Any, transition: Transition) -> int:
    """The frames a generated transition's clip is generated with: its duration at the
    storyboard's fps plus the two frames it starts and ends on (snapped to the engine's rule);
    its clip keeps all but those two."""
    rule, longest = vs.engine.frame_rule, vs.engine.max_frames
    return min(rule.snap(max(1, round(transition.duration * vs.fps)) + 2), longest)


def with_bridges(vs: Any, shots: list[ShotPlan], ctx: KeyContext, params: dict[str, Any],
                 profiles: ProfileChoice) -> list[ShotPlan]:
    """Insert a bridge shot after every included shot whose transition is `generated`: one
    first-last-frame segment from its last frame to the next included shot's first frame,
    `duration` long plus the two frames it starts and ends on (both dropped from the clip).
    `vs`: the ValidatedStoryboard."""
    included = [s for s in shots if s.include]
    following = {a.id: b for a, b in zip(included, included[1:])}
    out: list[ShotPlan] = []
    defaults = vs.model.defaults
    for shot in shots:
        out.append(shot)
        after = following.get(shot.id) if shot.include else None
        if after is None or shot.transition.type != "generated":
            continue
        upstream, transition = shot.segments[-1], shot.transition
        frames = bridge_frames(vs, transition)
        end_image, end_from = _bridge_end(after)
        name = bridge_id(shot.id, after.id)
        levels = profiles.levels(None, defaults, vs.model.profile)
        profile = effective(levels)
        job = SegmentJob(
            shot_id=name, index=0, frames=frames, fps=vs.fps, width=vs.width,
            height=vs.height, prompt=expand(transition.prompt, vs.model.cast) or after.segments[0].prompt,
            negative=expand(defaults.negative if defaults else None, vs.model.cast) or "",
            seed=derive_seed(vs.model.seed, name, 0),
            start=StartCondition("chain", upstream=upstream.ref), end_image=end_image,
            camera=(), start_time=0.0, key="",
            params=generation_params(params, (None, None, defaults), levels),
            upstream_key=upstream.key, chain=ChainSpec(lead=1), end_from=end_from, trim_end=1,
            loras=profile.loras if profile else (), profile=profile.name if profile else None,
            bridge=True,
        )
        # Registered like any job, though nothing refers to a bridge's frames yet.
        job = ctx.add(job)
        key = job.key
        bridge = ShotPlan(id=name, segments=[job], transition=Transition(), include=True,
                          bridge=True)
        bridge.post_frames = chain_frames_out(vs.post, bridge.frames, vs.fps)
        bridge.key = content_key("shot", {"segments": [key], "trim": [1, 1],
                                          "post": [step.as_dict() for step in vs.post]})
        out.append(bridge)
    return out

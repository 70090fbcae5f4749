"""Generated keyframes and the cast in the plan: which image engine makes each keyframe, with
what prompt, seed and references, and its content key; the seed base a cast gives a shot.

A keyframe's key hashes everything that determines its pixels (the image engine's identity and
params, the expanded prompt, negative, seed, size and the reference files' bytes); the segment
that starts (or ends) on it carries that key, so a keyframe change re-renders its shot only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from stages.plan.animate import planned_shot
from stages.plan.inputs import derive_seed
from stages.plan.keys import content_key
from stages.plan.model import KeyframeJob
from stages.storyboard.cast import expand
from stages.storyboard.resolve import ResolvedShot, inherited, keyframe_engine, resolve_shot
from stages.storyboard.schema import image_generated

# Image engine name -> (its identity, its config's params) for the render (flows.config.engines).
KeyframeEngines = Mapping[str, tuple[dict[str, Any], dict[str, Any]]]


def seed_base(vs: Any, rs: ResolvedShot) -> int:
    """The base a shot's derived seeds come from: its first cast member's `seed` when the shot
    sets no seed and that member has one, else the storyboard's `seed` (README's seed rule)."""
    cast = vs.model.cast or {}
    if rs.shot.seed is None and rs.cast and rs.cast[0] in cast \
            and cast[rs.cast[0]].seed is not None:
        return cast[rs.cast[0]].seed
    return vs.model.seed


def cast_inputs(vs: Any, rs: ResolvedShot, takes_references: bool
                ) -> tuple[tuple[str, ...], tuple[str, ...], tuple[Path, ...]]:
    """(names, descriptions, reference files) of the shot's cast; references only for an
    engine that takes them (an engine that ignores them never opens or hashes them)."""
    cast = vs.model.cast or {}
    names = tuple(n for n in rs.cast if n in cast)
    descriptions = tuple(cast[n].description or "" for n in names)
    references = tuple(vs.image_path(ref) for n in names for ref in cast[n].images) \
        if takes_references else ()
    return names, descriptions, references


def generated(rs: ResolvedShot) -> dict[str, Any]:
    """which ("start" / "end") -> the shot's generate block; a chained shot generates no start."""
    out = {}
    start, end = image_generated(rs.image), image_generated(rs.end_image)
    if start is not None and not rs.chained:
        out["start"] = start
    if end is not None:
        out["end"] = end
    return out


def keyframe_engine_names(vs: Any) -> list[str]:
    """The image engines the render needs, in first-use order (built once per render)."""
    names: dict[str, None] = {}
    for shot in vs.model.shots:
        rs = planned_shot(vs.engine, resolve_shot(shot, vs.model.defaults))
        for block in generated(rs).values():
            name = keyframe_engine(block, vs.keyframes_engine, vs.engine)
            if name is not None:
                names.setdefault(name)
    return list(names)


def keyframe_key(job: KeyframeJob, identity: dict[str, Any],
                 file_sha: Callable[[Path | None], str | None], draws_labels: bool = False) -> str:
    # An engine that draws the request's label (the preview's card) puts the shot on the pixels.
    label = {"label": [job.shot_id, job.which]} if draws_labels else {}
    return content_key("keyframe", {**label,
        "engine": identity, "prompt": job.prompt, "negative": job.negative, "seed": job.seed,
        "size": [job.width, job.height], "params": job.params,
        "references": [file_sha(p) for p in job.references],
    })


def plan_keyframes(vs: Any, rs: ResolvedShot, engines: KeyframeEngines,
                   file_sha: Callable[[Path | None], str | None]) -> dict[str, KeyframeJob]:
    """which -> the shot's keyframe jobs, keyed. The size is the render's; the seed the
    block's, else the shot's, else derived from the shot's seed base like segment seeds."""
    from engine.registry import engine_spec

    jobs = {}
    cast = vs.model.cast
    for which, block in generated(rs).items():
        name = keyframe_engine(block, vs.keyframes_engine, vs.engine)
        identity, params = engines[name]
        label = "keyframe" if which == "start" else "end_keyframe"
        seed = block.seed if block.seed is not None else rs.shot.seed if rs.shot.seed is not None \
            else derive_seed(seed_base(vs, rs), f"{rs.shot.id}:{label}", 0)
        names, _, references = cast_inputs(vs, rs, engine_spec(name).max_references > 0)
        params = dict(params)
        params.update({k: getattr(block, k) for k in ("steps", "cfg")
                       if getattr(block, k) is not None})
        job = KeyframeJob(
            shot_id=rs.shot.id, which=which, engine=name, prompt=expand(block.generate, cast),
            negative=expand(block.negative if block.negative is not None
                            else inherited("negative", rs.shot, rs.defaults), cast) or "", seed=seed, width=vs.width,
            height=vs.height, params=params, references=references, cast=names)
        jobs[which] = KeyframeJob(**{**job.__dict__, "key": keyframe_key(
            job, identity, file_sha, engine_spec(name).draws_labels)})
    return jobs


def unique_keyframes(plan: Any) -> list[KeyframeJob]:
    """The plan's keyframe jobs, one per key, in plan order: shots (or a shot's start and end)
    that plan the same keyframe (same engine, prompt, seed, size, references) share one
    generation; the flow submits it once and the progress counts it once."""
    seen: dict[str, KeyframeJob] = {}
    for job in plan.keyframes():
        seen.setdefault(job.key, job)
    return list(seen.values())

"""A segment job's content key, derived from the job's own fields.

The payload is built by walking `dataclasses.fields(SegmentJob)`: each field feeds the key entry
its metadata names (stages.plan.model), a field marked `key: False` is left out on purpose, and a
field with no marker is written under its own name (files by their bytes' hash). So a new field
reaches the key without anyone remembering to add it; `tests/stages/plan/test_job_keys.py`
proves it.

The entries below write the payload exactly as the planner always has (same names, same
shapes, the same entries left out for plain last-frame chaining and for generated transitions),
so the caches of existing storyboards still hit. A new field that is at its default value is
left out of the payload for the same reason: adding a knob re-renders only what uses it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel

from stages.plan.chaining import ChainSpec
from stages.plan.keys import content_key
from stages.plan.model import FrameRef, SegmentJob, SegmentRef


@dataclass
class KeyContext:
    """What a segment's key needs besides the job: the engine's identity, whether the engine
    draws labels (then the shot id and index change pixels), file hashes and the planned keys
    of the segments a job refers to."""

    engine: dict[str, Any]
    draws_labels: bool
    file_sha: Callable[[Path | None], str | None]
    keys: dict[SegmentRef, str] = field(default_factory=dict)  # planned so far

    def key_of(self, ref: SegmentRef | None) -> str:
        return self.keys[ref]

    def add(self, job: SegmentJob) -> SegmentJob:
        """`job` with its key, which later jobs (anchors, bridges) can now refer to."""
        job = replace(job, key=segment_key(job, self))
        self.keys[job.ref] = job.key
        return job


def _start(job: SegmentJob, ctx: KeyContext) -> dict[str, Any]:
    start = {"kind": job.start.kind, "image": ctx.file_sha(job.start.image),
             "upstream": job.upstream_key}
    if job.bridge and start["image"] is None:
        del start["image"]  # bridge keys never had it
    return {"start": start}


def _end(job: SegmentJob, ctx: KeyContext) -> dict[str, Any]:
    if not job.bridge and job.end_from is None:
        return {"end_image": ctx.file_sha(job.end_image)}
    segment = job.end_from.segment if job.end_from is not None else None
    return {"end": {"image": ctx.file_sha(job.end_image),
                    "segment": None if job.end_from is None
                    else [job.end_from.kind, ctx.key_of(segment)]}}


def _camera(job: SegmentJob, ctx: KeyContext) -> dict[str, Any]:
    if job.bridge and not job.camera:
        return {}  # a bridge has no camera move; its key never had the entry
    return {"camera": [c.as_tuple() for c in job.camera]}


def _labels(job: SegmentJob, ctx: KeyContext) -> dict[str, Any]:
    return {"labels": (job.shot_id, job.index) if ctx.draws_labels else None}


def _loras(job: SegmentJob, ctx: KeyContext) -> dict[str, Any]:
    if job.bridge and not job.loras:
        return {}  # bridges got the entry with profile LoRAs; without them they keep their keys
    return {"loras": [(ctx.file_sha(Path(x.path)), x.strength, x.strength_2) for x in job.loras]}


def _video(job: SegmentJob, ctx: KeyContext) -> dict[str, Any]:
    uses_video = job.source_video is not None or job.driving_video is not None
    if job.bridge and not uses_video:
        return {}
    return {"source_video": ctx.file_sha(job.source_video),
            "driving_video": ctx.file_sha(job.driving_video),
            "video_offset": round(job.start_time, 6) if uses_video else None}


def _camera_apply(job: SegmentJob, ctx: KeyContext) -> dict[str, Any]:
    if job.bridge and job.camera_apply == "engine":
        return {}
    return {"camera_apply": job.camera_apply}


def _frame_identity(ref: FrameRef | None, ctx: KeyContext) -> Any:
    if ref is None:
        return None
    if ref.kind == "image":
        return {"image": ctx.file_sha(ref.image)}
    return {ref.kind: ctx.key_of(ref.segment)}


def _chain(job: SegmentJob, ctx: KeyContext) -> dict[str, Any]:
    spec = job.chain
    if spec == ChainSpec(mode=spec.mode, lead=spec.lead) and job.anchor is None:
        return {}  # plain last-frame chaining keeps the keys it always had
    return {"chain": spec.key_dict(), "anchor": _frame_identity(job.anchor, ctx)}


def _bridge(job: SegmentJob, ctx: KeyContext) -> dict[str, Any]:
    return {"bridge": True} if job.bridge else {}


def _plain(name: str) -> Callable[[SegmentJob, KeyContext], dict[str, Any]]:
    return lambda job, ctx: {name: getattr(job, name)}


# Entry name -> how the fields that name it are written into the payload.
ENTRIES: dict[str, Callable[[SegmentJob, KeyContext], dict[str, Any]]] = {
    **{name: _plain(name) for name in (
        "frames", "fps", "width", "height", "prompt", "negative", "seed", "params")},
    "labels": _labels, "start": _start, "end": _end, "camera": _camera, "loras": _loras,
    "video": _video, "camera_apply": _camera_apply, "chain": _chain, "bridge": _bridge,
}


def _value(value: Any, ctx: KeyContext) -> Any:
    """A field's value as key material: files by content, never by path."""
    if isinstance(value, Path):
        return ctx.file_sha(value)
    if isinstance(value, BaseModel):
        return value.model_dump()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _value(getattr(value, f.name), ctx) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _value(v, ctx) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_value(v, ctx) for v in value]
    return value


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def key_payload(job: SegmentJob, ctx: KeyContext) -> dict[str, Any]:
    """Everything that determines the job's pixels, entry by entry, from its fields."""
    payload: dict[str, Any] = {"engine": ctx.engine}
    written: set[str] = set()
    for f in dataclasses.fields(job):
        entry = f.metadata.get("key", True)
        if entry is False:
            continue
        if entry is True:  # no marker: the field is its own entry
            value = getattr(job, f.name)
            if value != _default(f):
                payload[f.name] = _value(value, ctx)
            continue
        if entry not in written:
            written.add(entry)
            payload.update(ENTRIES[entry](job, ctx))
    return payload


def segment_key(job: SegmentJob, ctx: KeyContext) -> str:
    return content_key("segment", key_payload(job, ctx))

"""Segment content keys are derived from SegmentJob's fields: a field reaches the key unless it
is explicitly marked `key: False`, so a new field cannot silently give stale cache hits."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from engine.base import CameraState, LoraRef
from stages.control.job import ControlJob
from stages.plan.chaining import ChainSpec
from stages.plan.depth import DepthJob
from stages.plan.job_keys import ENTRIES, KeyContext, key_payload, segment_key
from stages.plan.model import FrameRef, SegmentJob, SegmentRef, StartCondition

# Fields that must not change a segment's key, each with the reason in stages/plan/model.py.
# depth_model, pose_model: the estimators' local folders; their identities are keyed.
NOT_KEYED = {"key", "prompt_from", "trim_end", "profile", "cast", "control_model", "depth_model",
             "pose_model"}


def ctx() -> KeyContext:
    """Files hash to their names (no disk), planned keys are made up."""
    return KeyContext(
        engine={"engine": "preview"}, draws_labels=True,
        file_sha=lambda path: None if path is None else f"sha:{path.name}",
        keys={SegmentRef("up", 0): "k-up", SegmentRef("a", 0): "k-a0"},
    )


def full_job() -> SegmentJob:
    """A job with every conditional key entry switched on (labels, input videos, a chain mode
    beyond plain last-frame, an anchor), so every field has a way into the key."""
    return SegmentJob(
        shot_id="a", index=1, frames=17, fps=16, width=64, height=64, prompt="p",
        negative="n", seed=7, start=StartCondition("chain", upstream=SegmentRef("a", 0)),
        end_image=Path("/x/end.png"), camera=(CameraState(),), start_time=0.5, key="",
        params={"steps": 2}, loras=(LoraRef("/x/l.safetensors", 1.0, None),),
        source_video=Path("/x/src.mp4"), driving_video=Path("/x/drive.mp4"),
        camera_apply="engine", upstream_key="k-a0",
        chain=ChainSpec(mode="svi", lead=5, conditioning="svi", motion_latents=1),
        anchor=FrameRef("image", image=Path("/x/anchor.png")),
    )


# A different value per field (the test below fails when a new field has none).
CHANGED = {
    "shot_id": "b", "index": 2, "frames": 21, "fps": 24, "width": 80, "height": 48,
    "prompt": "q", "negative": "m", "seed": 8,
    "start": StartCondition("image", image=Path("/x/start.png")),
    "end_image": Path("/x/end2.png"), "camera": (CameraState(zoom=0.5),), "start_time": 1.0,
    "params": {"steps": 3}, "loras": (LoraRef("/x/l2.safetensors", 0.5, None),),
    "source_video": Path("/x/src2.mp4"), "driving_video": Path("/x/drive2.mp4"),
    "camera_apply": "post", "upstream_key": "k-up",
    "chain": ChainSpec(mode="svi", lead=5, conditioning="svi", motion_latents=1,
                       color_strength=0.5),
    "anchor": FrameRef("last_frame", segment=SegmentRef("up", 0)),
    "end_from": FrameRef("first_frame", segment=SegmentRef("up", 0)), "bridge": True,
    "descriptions": ("an old keeper",), "references": (Path("/x/keeper.png"),),
    "start_keyframe": "k-kf", "end_keyframe": "k-kf-end",
    "control": ControlJob(video=Path("/x/dance.mp4"), kind="depth", strength=0.8, start=2.0,
                          fps=16, width=64, height=64, shot_frames=17, offset=0),
    "depth": DepthJob(file=Path("/x/cliff_depth.png")),
    "pose": (("model_type", "vitpose"), ("sha256", "0123456789abcdef")),
}


def test_every_field_is_keyed_or_explicitly_marked():
    for f in dataclasses.fields(SegmentJob):
        entry = f.metadata.get("key", True)
        assert entry is True or entry is False or entry in ENTRIES, f.name
        assert (entry is False) == (f.name in NOT_KEYED), \
            f"{f.name}: key marker changed; say why in stages/plan/model.py and here"


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(SegmentJob)
                                  if f.name not in NOT_KEYED])
def test_changing_any_keyed_field_changes_the_key(name):
    assert name in CHANGED, f"new SegmentJob field {name!r}: add a changed value to CHANGED"
    job = full_job()
    assert segment_key(dataclasses.replace(job, **{name: CHANGED[name]}), ctx()) \
        != segment_key(job, ctx())


@pytest.mark.parametrize("name", sorted(NOT_KEYED))
def test_fields_marked_not_keyed_leave_the_key_alone(name):
    job = full_job()
    other = {"key": "x", "prompt_from": 2.0, "trim_end": 1, "profile": "draft",
             "cast": ("keeper",), "control_model": Path("/models/depth"),
             "depth_model": Path("/models/depth"), "pose_model": Path("/models/pose")}[name]
    assert segment_key(dataclasses.replace(job, **{name: other}), ctx()) \
        == segment_key(job, ctx())


def test_a_field_added_without_a_marker_reaches_the_key():
    """What a contributor adding `sharpness` to SegmentJob gets without touching the key code:
    set, it changes the key; at its default, existing keys (and caches) stay as they were."""
    Extended = dataclasses.make_dataclass(
        "Extended", [("sharpness", float, dataclasses.field(default=0.0)),
                     ("mask", Path | None, dataclasses.field(default=None))],
        bases=(SegmentJob,), frozen=True)
    base = full_job()
    plain = Extended(**{f.name: getattr(base, f.name) for f in dataclasses.fields(SegmentJob)})
    assert segment_key(plain, ctx()) == segment_key(base, ctx())
    sharper = dataclasses.replace(plain, sharpness=0.3)
    assert segment_key(sharper, ctx()) != segment_key(plain, ctx())
    assert key_payload(sharper, ctx())["sharpness"] == 0.3
    # A file reaches the key by its bytes, never by its path.
    masked = dataclasses.replace(plain, mask=Path("/x/mask.png"))
    assert key_payload(masked, ctx())["mask"] == "sha:mask.png"


def test_chain_spec_key_holds_every_field_not_marked():
    spec = ChainSpec()
    marked = {f.name for f in dataclasses.fields(ChainSpec) if f.metadata.get("key") is False}
    assert marked == {"blend"}  # the join happens after generation: the shot key has it
    assert set(spec.key_dict()) == {f.name for f in dataclasses.fields(ChainSpec)} - marked

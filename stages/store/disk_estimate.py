"""How many bytes a render will write, estimated from its plan before anything is rendered.

The estimate errs on the large side: a render refused for want of space costs a message, a
render that fills the disk hours in costs the night. Entries already in the cache cost nothing.
Ratios are bytes per raw RGB byte (width x height x 3 per frame). Preview renders measure about
0.35 for FFV1 intermediates and 0.02 for H.264 at crf 18; the ratios below leave room for noisier
generated footage and lower crf values.
"""

from __future__ import annotations

from dataclasses import dataclass

from stages.plan.timing import resampled_count
from stages.store.cache import CacheStore
from stages.plan.build import RenderPlan

LOSSLESS_RATIO = 0.75
PNG_RATIO = 0.8
DELIVERABLE_RATIO = 0.1


@dataclass(frozen=True)
class DiskEstimate:
    cache: int  # new cache entries (segments, shots, deliverables)
    render_folder: int  # copies of the deliverables, last frames and reports

    @property
    def total(self) -> int:
        return self.cache + self.render_folder


def estimate_bytes(plan: RenderPlan, store: CacheStore) -> DiskEstimate:
    frame = plan.width * plan.height * 3
    cache = 0
    for job in plan.segments():
        if not store.has("segment", job.key):
            cache += job.frames * frame * LOSSLESS_RATIO + frame * PNG_RATIO
    out_frames = 0
    for shot in plan.shots:
        if shot.include:
            out_frames += resampled_count(shot.post_frames, plan.post_fps, plan.output_fps)
        if not store.has("shot", shot.key):
            cache += shot.post_frames * frame * LOSSLESS_RATIO
    deliverables = 2 * out_frames * frame * DELIVERABLE_RATIO  # the episode and every shot
    if not store.has("episode", plan.key):
        cache += deliverables
    last_frames = sum(len(s.segments) for s in plan.included()) * frame * PNG_RATIO
    return DiskEstimate(cache=int(cache), render_folder=int(deliverables + last_frames))

"""Rendering generated keyframes and loading cast references.

A keyframe is one PNG made by an image engine (`Engine.generate_image`), stored in the cache
under the kind "keyframe" (one entry per key, like segments: files, meta.json, checksums) and
copied by the assembly to `frames/<shot>_keyframe.png` (`<shot>_keyframe_end.png`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from engine.base import Engine, ImageRequest, ProgressFn
from stages.media.png import save_png
from stages.plan.model import KeyframeJob, keyframe_label
from stages.store.cache import CacheStore
from stages.storyboard.image_refs import unchanged

KEYFRAME = "keyframe.png"


@dataclass(frozen=True)
class KeyframeResult:
    shot_id: str
    which: str  # "start" | "end"
    key: str
    seed: int
    engine: str
    prompt: str
    cached: bool
    seconds: float
    image: Path  # the PNG in the cache entry

    @property
    def label(self) -> str:
        return keyframe_label(self.shot_id, self.which)


def load_references(paths: Sequence[Path]) -> tuple[np.ndarray, ...]:
    """Cast reference files as uint8 RGB at their own size (engines scale them as their
    conditioning needs); each re-checked against the path validation resolved."""
    from PIL import Image, ImageOps

    out = []
    for path in paths:
        with Image.open(unchanged(path, "cast reference")) as im:
            out.append(np.asarray(ImageOps.exif_transpose(im).convert("RGB"), dtype=np.uint8))
    return tuple(out)


def render_keyframe(job: KeyframeJob, engine: Engine, store: CacheStore,
                    report: Callable[[str], None] = lambda line: None,
                    progress: ProgressFn | None = None) -> KeyframeResult:
    """Generate the keyframe unless the cache has it."""
    started = time.perf_counter()
    entry = store.get("keyframe", job.key)
    cached = entry is not None
    if entry is None:
        request = ImageRequest(prompt=job.prompt, width=job.width, height=job.height,
                               seed=job.seed, negative=job.negative, params=job.params,
                               reference_images=load_references(job.references),
                               label=f"{job.shot_id} {job.which} keyframe")
        image = engine.generate_image(request, progress)
        expected = (job.height, job.width, 3)
        if image.shape != expected or image.dtype != np.uint8:
            raise RuntimeError(f"image engine {engine.spec.name!r} returned {image.dtype} "
                               f"{image.shape} for the {job.which} keyframe of shot "
                               f"{job.shot_id}, expected uint8 {expected}")
        with store.put("keyframe", job.key, {"shot": job.shot_id, "which": job.which,
                                             "engine": job.engine, "seed": job.seed}) as tmp:
            save_png(tmp / KEYFRAME, image)
        entry = store.published("keyframe", job.key)
    seconds = time.perf_counter() - started
    label = keyframe_label(job.shot_id, job.which)
    report(f"  {label:<14} {'keyframe':>11}  "
           f"{'cached' if cached else f'generated in {seconds:.1f}s'} on {job.engine}")
    return KeyframeResult(job.shot_id, job.which, job.key, job.seed, job.engine, job.prompt,
                          cached, seconds, entry.file(KEYFRAME))


def as_job(result: KeyframeResult, job: KeyframeJob) -> KeyframeResult:
    """`result` (made for a job with the same key) as `job`'s own: its shot, which, prompt and
    seed, so its file in frames/ and its manifest row are that shot's; a copy counts as cached
    (one generation, however many shots start from it)."""
    if (result.shot_id, result.which) == (job.shot_id, job.which):
        return result
    return replace(result, shot_id=job.shot_id, which=job.which, prompt=job.prompt,
                   seed=job.seed, engine=job.engine, cached=True, seconds=0.0)


def keyframe_images(results: Sequence[KeyframeResult]) -> Mapping[str, Path]:
    """key -> PNG, what build_request looks a segment's start_keyframe / end_keyframe up in."""
    return {r.key: r.image for r in results}

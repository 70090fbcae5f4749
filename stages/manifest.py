"""manifest.json: what a render produced, how, and from which cache entries (DESIGN.md)."""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import json
import platform
from pathlib import Path
from typing import Any, Sequence

from stages.assemble import EpisodeResult
from stages.atomic import atomic_write_json
from stages.plan import RenderPlan
from stages.render_steps import ShotResult


def build_manifest(
    plan: RenderPlan,
    shots: Sequence[ShotResult],
    episode: EpisodeResult,
    out_dir: Path,
    timings: dict[str, float],
    engine_name: str,
    runtime: dict[str, Any] | None = None,
) -> dict[str, Any]:
    by_id = {s.id: s for s in shots}
    rel = lambda p: str(Path(p).relative_to(out_dir)) if Path(p).is_relative_to(out_dir) else str(p)
    shot_entries = []
    for shot_plan in plan.included():
        result = by_id[shot_plan.id]
        jobs = {job.index: job for job in shot_plan.segments}
        shot_entries.append({
            "id": shot_plan.id,
            "frames": result.frames,
            "fps": result.fps,
            "duration_s": round(result.frames / result.fps, 6),
            "key": result.key,
            "cached": result.cached,
            "seconds": round(result.seconds, 3),  # its post chain (or cache lookup)
            "transition": shot_plan.transition.model_dump(),
            # A generated transition's clip, between the shots around it (not a storyboard shot).
            "bridge": shot_plan.bridge,
            "video": rel(episode.shot_videos[shot_plan.id]),
            "segments": [
                {
                    "index": seg.index,
                    "frames": seg.frames,
                    "seed": seg.seed,
                    "key": seg.key,
                    "cached": seg.cached,
                    "seconds": round(seg.seconds, 3),
                    "last_frame": f"frames/{seg.shot_id}_{seg.index}_last.png",
                    # Which engine made it, and any out-of-memory steps or fallback on the way.
                    "engine": seg.generation.get("engine", engine_name),
                    "degraded": list(seg.generation.get("degraded") or []),
                    "fallback_reason": seg.generation.get("fallback_reason"),
                    # The render profile its settings came from (stages.profiles), if any.
                    "profile": jobs[seg.index].profile if seg.index in jobs else None,
                }
                for seg in result.segments
            ],
        })
    segments = [seg for shot in shots for seg in shot.segments]
    return {
        "storyboard": plan.name,
        "storyboard_file": plan.storyboard_path.name,
        "engine": engine_name,
        "engine_identity": plan.engine,
        # Speed choices made at load (attention kernel picked by auto, compile, quantize).
        "engine_runtime": dict(runtime or {}),
        "fps": episode.fps,
        "generation_fps": plan.fps,
        "resolution": f"{plan.width}x{plan.height}",
        "frames": episode.frames,
        "duration_s": round(episode.frames / episode.fps, 6),
        "video": rel(episode.video),
        "contact_sheet": rel(episode.contact_sheet),
        "key": plan.key,
        "post": [step.as_dict() for step in plan.post],
        "output": plan.output.model_dump(),
        "shots": shot_entries,
        "segments_rendered": sum(not s.cached for s in segments),
        "segments_cached": sum(s.cached for s in segments),
        "warnings": list(plan.warnings),
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


# Packages whose versions can change pixels or behaviour; recorded so a video can be re-rendered.
PACKAGES = ("reelforge", "torch", "diffusers", "transformers", "numpy", "opencv-python-headless",
            "pillow", "imageio-ffmpeg", "prefect", "hydra-core", "pydantic")
# The container tag that carries the manifest inside the MP4 (stages.video_io.copy_with_metadata).
VIDEO_TAG = "reelforge_manifest"


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def provenance(storyboard_text: bytes, config: dict[str, Any]) -> dict[str, Any]:
    """What, besides the cache keys, it takes to trace and re-render a video: the storyboard
    exactly as rendered (and its hash), the resolved config and the software versions."""
    return {
        "storyboard_sha256": hashlib.sha256(storyboard_text).hexdigest(),
        "storyboard_yaml": storyboard_text.decode("utf-8", "replace"),
        "config": config,
        "packages": package_versions(),
    }


# What one run measured rather than what the video is: left out of the copy inside the video, so
# rendering the same storyboard again (all from the cache) gives a byte-identical file.
RUN_ONLY = ("created", "timings", "segments_rendered", "segments_cached")
RUN_ONLY_PER_ITEM = ("cached", "seconds")


def embedded_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest as carried by the video: everything but the run's own measurements."""
    out = {k: v for k, v in manifest.items() if k not in RUN_ONLY}
    out["shots"] = [
        {**{k: v for k, v in shot.items() if k not in RUN_ONLY_PER_ITEM},
         "segments": [{k: v for k, v in seg.items() if k not in RUN_ONLY_PER_ITEM}
                      for seg in shot.get("segments", [])]}
        for shot in manifest.get("shots", [])
    ]
    return out


def manifest_tag(manifest: dict[str, Any]) -> str:
    """The manifest as one compact JSON text for the video's metadata (embedded_manifest)."""
    return json.dumps(embedded_manifest(manifest), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)


def write_manifest(out_dir: Path, manifest: dict[str, Any]) -> Path:
    return atomic_write_json(out_dir / "manifest.json", manifest)

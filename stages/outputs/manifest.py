"""manifest.json: what a render produced, how, and from which cache entries (DESIGN.md)."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import socket
from pathlib import Path
from typing import Any, Sequence

import yaml

from stages.render.assemble import EpisodeResult
from stages.media.atomic import atomic_write_json
from stages.plan.build import RenderPlan
from stages.plan.animate import pose_record
from stages.render.steps import ShotResult


def camera_move(shot_plan: Any) -> dict[str, float]:
    """How far the camera moves over the shot (the 2D and 2.5D values that change, last frame
    minus first); {} for a still camera."""
    states = [s for job in shot_plan.segments for s in (job.camera[:1] + job.camera[-1:])]
    if not states:
        return {}
    first, last = states[0], states[-1]
    return {f.name: round(getattr(last, f.name) - getattr(first, f.name), 4)
            for f in dataclasses.fields(first)
            if abs(getattr(last, f.name) - getattr(first, f.name)) > 1e-6}


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
            "camera": camera_move(shot_plan),  # the shot's move, first frame to last
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
                    # A fallback's adaptations (mode, size, retiming); only when it fell back.
                    **({"adapted": seg.generation.get("adapted"),
                        **({"retimed": list(seg.generation["retimed"])}
                           if seg.generation.get("retimed") else {})}
                       if seg.generation.get("fallback_reason") else {}),
                    # The render profile its settings came from (stages.plan.profiles), if any.
                    "profile": jobs[seg.index].profile if seg.index in jobs else None,
                    # The prompt the engine got ({name} expanded) and the cast it used.
                    **({"prompt": jobs[seg.index].prompt, "cast": list(jobs[seg.index].cast)}
                       if seg.index in jobs else {}),
                    # An animate segment whose pose a local model read from the driving video.
                    **({"pose_model": pose_record(jobs[seg.index].pose)}
                       if seg.index in jobs and jobs[seg.index].pose else {}),
                }
                for seg in result.segments
            ],
            # Generated start / end images (storyboard `image: {generate: ...}`).
            "keyframes": [
                {"which": k.which, "file": f"frames/{k.label}.png", "key": k.key,
                 "cached": k.cached, "seed": k.seed, "engine": k.engine, "prompt": k.prompt,
                 "seconds": round(k.seconds, 3)}
                for k in result.keyframes
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
        "keyframes_rendered": sum(not k.cached for s in shots for k in s.keyframes),
        "keyframes_cached": sum(k.cached for s in shots for k in s.keyframes),
        "segments_rendered": sum(not s.cached for s in segments),
        "segments_cached": sum(s.cached for s in segments),
        "warnings": list(plan.warnings),
        # audio.reactive's resolved schedules (stages.audio.schedules); only with mappings.
        **({"audio_reactive": plan.reactive.manifest(
            episode.frames, plan.included()[0].id if plan.included() else "")}
           if getattr(plan, "reactive", None) is not None else {}),
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        # Where this machine keeps them: manifest.json only (LOCAL_ONLY), never in the video.
        "storyboard_path": str(plan.storyboard_path),
        "render_folder": str(out_dir),
    }


# Packages whose versions can change pixels or behaviour; recorded so a video can be re-rendered.
PACKAGES = ("reelforge", "torch", "diffusers", "transformers", "numpy", "opencv-python-headless",
            "pillow", "imageio-ffmpeg", "prefect", "hydra-core", "pydantic")
# The container tag that carries the manifest inside the MP4 (stages.media.metadata.copy_with_metadata).
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
RUN_ONLY = ("created", "timings", "segments_rendered", "segments_cached", "run_url")
RUN_ONLY_PER_ITEM = ("cached", "seconds")
# Absolute locations on the rendering machine: in manifest.json, never in the video.
LOCAL_ONLY = ("storyboard_path", "render_folder")


def strip_yaml_comments(text: str) -> str:
    """`text` without its YAML comments, data unchanged: whole-line comments are dropped, end-of-
    line comments cut (never a `#` inside quotes or a block scalar). The result is checked to
    load to the same data; if it would not, the data is written out again without comments."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return "".join(line for line in text.splitlines(keepends=True)
                       if not line.lstrip().startswith("#"))
    out: list[str] = []
    block_indent: int | None = None  # inside a | or > block scalar indented more than this
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        ending = line[len(body):]
        indent = len(body) - len(body.lstrip(" "))
        if block_indent is not None:
            if not body.strip() or indent > block_indent:
                out.append(line)
                continue
            block_indent = None
        if body.lstrip().startswith("#"):
            continue
        cut = _comment_start(body)
        if cut is not None:
            body = body[:cut].rstrip()
            if not body.strip():
                continue
        if re.search(r"(^|[:\-]\s)\s*[|>][0-9+\-]*\s*$", body):
            block_indent = indent
        out.append(body + ending)
    stripped = "".join(out)
    try:
        if yaml.safe_load(stripped) == data:
            return stripped
    except yaml.YAMLError:
        pass
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)


def _comment_start(line: str) -> int | None:
    """Index of the `#` that starts an end-of-line comment (after a space, outside quotes)."""
    quote: str | None = None
    i = 0
    while i < len(line):
        c = line[i]
        if quote == "'":
            if c == "'":
                if line[i + 1:i + 2] == "'":
                    i += 1  # '' is an escaped quote
                else:
                    quote = None
        elif quote == '"':
            if c == "\\":
                i += 1
            elif c == '"':
                quote = None
        elif c in "'\"" and (i == 0 or line[i - 1] in " \t:[{,-"):
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            return i
        i += 1
    return None


_HOME_DIRS = re.compile(r"/(home|Users|usr/home)/[^/\s\"',;:]+|/root(?=/|$)")


def _portable(value: str, roots: list[tuple[str, str]], host: str) -> str:
    """`value` with the machine's absolute locations replaced by portable names."""
    if os.path.isabs(value) and "\n" not in value:
        for root, name in roots:
            if value == root:
                return name
            if value.startswith(root.rstrip("/") + "/"):
                rest = value[len(root.rstrip("/")) + 1:]
                return rest if name == "." else f"{name}/{rest}"
    for root, name in roots:
        if len(root) > 1:
            value = value.replace(root.rstrip("/") + "/", "" if name == "." else name + "/")
            value = re.sub(re.escape(root.rstrip("/")) + r"(?![\w.-])", name, value)
    value = _HOME_DIRS.sub("~", value)
    if os.path.isabs(value) and "\n" not in value and "/" in value.strip("/"):
        value = ".../" + Path(value).name  # somewhere else on this machine: its name only
    if host and len(host) >= 3 and host in value and not _HEX.match(value):
        value = re.sub(r"(?<![\w-])" + re.escape(host) + r"(?![\w-])", "<host>", value)
    return value


_HEX = re.compile(r"^[0-9a-f]{16,}$")  # content keys and hashes: never a host name


def _scrub(obj: Any, roots: list[tuple[str, str]], host: str) -> Any:
    if isinstance(obj, str):
        return _portable(obj, roots, host)
    if isinstance(obj, dict):
        return {k: _scrub(v, roots, host) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_scrub(v, roots, host) for v in obj]
    return obj


def _roots(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """(absolute folder, portable name), most specific first: the storyboard's folder is ".",
    the output root `<output_dir>`, the cache `<cache_dir>`, the working directory relative to
    the storyboard when it contains it."""
    config = manifest.get("config") or {}
    found: list[tuple[str, str]] = []
    sb_path = manifest.get("storyboard_path")
    sb_dir = Path(sb_path).parent if sb_path else None
    cwd = Path(config["cwd"]).resolve() if config.get("cwd") else None
    render_folder = manifest.get("render_folder")
    if render_folder:
        out_root = Path(render_folder)
        variant = config.get("variant")
        out_root = out_root.parent.parent if variant else out_root.parent
    elif cwd is not None:
        out_root = cwd / str(config.get("output_dir") or "renders")
    else:
        out_root = None
    if config.get("cache_dir") and cwd is not None:
        found.append((str((cwd / str(config["cache_dir"])).resolve()), "<cache_dir>"))
    if out_root is not None:
        found.append((str(out_root), "<output_dir>"))
    if sb_dir is not None:
        found.append((str(sb_dir), "."))
        for up, ancestor in enumerate(sb_dir.parents, start=1):
            if cwd is not None and ancestor == cwd:
                found.append((str(cwd), "/".join([".."] * up)))
    elif cwd is not None:
        found.append((str(cwd), "."))
    found = [(root, name) for root, name in found if root not in ("/", "")]
    return sorted(found, key=lambda r: len(r[0]), reverse=True)


def _keep_comments(manifest: dict[str, Any]) -> bool:
    config = manifest.get("config") or {}
    prov = config.get("provenance") or {}
    return isinstance(prov, dict) and prov.get("comments") is True


def embedded_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest as carried by the video (and published): everything but the run's own
    measurements, with no trace of the rendering machine. Paths are relative to the storyboard's
    folder (`assets/x.png`, `.`) or named after the output and cache folders (`<output_dir>/...`,
    `<cache_dir>`); any other absolute path keeps only its last part; home folders, user and host
    names are removed; the storyboard's comments too, unless `provenance.comments=true`."""
    out = {k: v for k, v in manifest.items() if k not in RUN_ONLY and k not in LOCAL_ONLY}
    out["shots"] = [
        {**{k: v for k, v in shot.items() if k not in RUN_ONLY_PER_ITEM},
         "segments": [{k: v for k, v in seg.items() if k not in RUN_ONLY_PER_ITEM}
                      for seg in shot.get("segments", [])]}
        for shot in manifest.get("shots", [])
    ]
    text = out.pop("storyboard_yaml", None)
    out = _scrub(out, _roots(manifest), socket.gethostname())
    if text is not None:
        keep = _keep_comments(manifest)
        out["storyboard_yaml"] = text if keep else strip_yaml_comments(text)
        out["storyboard_comments"] = "kept" if keep else "removed"
    return out


def manifest_tag(manifest: dict[str, Any]) -> str:
    """The manifest as one compact JSON text for the video's metadata (embedded_manifest)."""
    return json.dumps(embedded_manifest(manifest), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)


def write_manifest(path: Path, manifest: dict[str, Any]) -> Path:
    """Write `manifest` to `path` (output_paths.render_files names it)."""
    return atomic_write_json(path, manifest)

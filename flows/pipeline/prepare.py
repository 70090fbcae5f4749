"""Everything before rendering: find and validate the storyboard, build the engine and the plan.

Nothing here writes a file, so an invalid storyboard leaves no trace (exit status 2), and nothing
here imports Prefect, so validation and dry runs answer quickly.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, TextIO

from engine.base import Engine
from engine.registry import UnknownEngineError, engine_spec
from flows.config.engines import (
                                  build_keyframe_engines,
                                  build_engines,
                                  check_engine_params,
                                  check_profiles_ready,
                                  profile_choice,
                                  with_profile_options,
                                  )
from flows.config.policies import image_policy, render_folder
from flows.config.helper_models import helper_folders
from flows.config.settings import ConfigInvalid, RenderSettings, find_storyboard, post_presets
from flows.config.storage import layout, open_storage
from stages.control.publish import control_summary
from stages.store.cache import CacheStore
from stages.store.output_paths import RenderFiles, render_files, subset_label
from stages.plan.build import RenderPlan, build_plan
from stages.plan.keyframes import keyframe_engine_names
from stages.storyboard.problems import StoryboardInvalid
from stages.storyboard.validate import ValidateOptions, ValidatedStoryboard, validate_storyboard


@dataclass
class Prepared:
    settings: RenderSettings
    storyboard: ValidatedStoryboard
    plan: RenderPlan
    engine: Engine
    store: CacheStore
    out_dir: Path
    fallback: Engine | None = None  # renders segments the engine cannot (flows.config.engines)
    fallback_params: dict = field(default_factory=dict)
    # Image engines that generate keyframes, by name (flows.config.engines.build_keyframe_engines).
    keyframe_engines: dict[str, Engine] = field(default_factory=dict)
    # The image engine that makes a t2v segment's start image when it falls back to an
    # image-to-video engine (keyframes.engine, or the render engine when it makes images).
    stills: Engine | None = None

    @property
    def subset(self) -> str | None:
        """The label of a `shots=[...]` render, None for the whole storyboard."""
        return subset_label(self.storyboard.selected, [s.id for s in self.storyboard.model.shots])

    @property
    def files(self) -> RenderFiles:
        """What this render names its episode, contact sheet, manifest and report."""
        return render_files(self.plan.name, self.subset)


def engine_name(settings: RenderSettings) -> str:
    name = (settings.engine or {}).get("name")
    if not isinstance(name, str):
        raise ConfigInvalid(f"engine.name={name!r}: choose an engine, e.g. engine=preview")
    return name


def prepare(settings: RenderSettings) -> Prepared:
    """Raises ConfigInvalid or StoryboardInvalid; returns a plan ready to render."""
    settings.check()
    name = engine_name(settings)
    try:
        spec = engine_spec(name)
    except UnknownEngineError as exc:
        raise ConfigInvalid(f"engine={name}: {exc}") from None
    if not spec.makes_video:  # an image engine (sdxl, flux, ...): refused before any work
        raise ConfigInvalid(
            f"engine={name} makes stills, not video: it generates keyframes "
            f"(`image: {{generate: \"...\", engine: {name}}}` in a shot); render with a video "
            f"engine, e.g. engine=preview or engine=wan21_i2v")
    path = find_storyboard(settings)
    options = ValidateOptions(
        fps=settings.fps, resolution=settings.resolution_size(), shots=settings.shots, post_presets=post_presets(),
        default_post=settings.post, post_override=settings.post_override,
        default_output=settings.output,
    )
    options.images = image_policy(settings)  # images confined to known folders, URLs opt-in
    options.profiles = profile_choice(settings.engine, settings.profile)
    options.keyframes_engine = (settings.keyframes or {}).get("engine")
    # The helper models: depth (`depth: estimate`, depth control), pose and its detector.
    helpers = helper_folders(settings)
    options.depth_model = helpers["depth.model"]
    options.pose_model, options.pose_detector = helpers["pose.model"], helpers["pose.detector"]
    options.cache_dir = layout(settings).cache_dir  # audio.reactive's analysis is kept there
    configured_fallback = (settings.engine or {}).get("fallback")
    options.fallback = (configured_fallback.get("name") if isinstance(configured_fallback, Mapping)
                        else configured_fallback) or None
    try:
        storyboard = validate_storyboard(path, spec, options)
    except StoryboardInvalid as invalid:
        # List the config's problems too, so one run names everything to fix.
        raise invalid.with_config_problems(_config_problems(settings, options)) from None
    check_profiles_ready(options.profiles, declared_profiles(storyboard.model, settings.profile))
    # A render-wide profile's engine options (low_vram: quantize, offload) apply at load.
    engine_config = with_profile_options(
        settings.engine, options.profiles.top(storyboard.model.profile),
        settings.engine_cli_options)
    engine, fallback, fallback_params = build_engines(engine_config, storyboard.model.fallback)
    check_engine_params(engine, engine_config, options.profiles)
    keyframers = build_keyframe_engines(keyframe_engine_names(storyboard), engine_config, engine)
    stills_name = options.keyframes_engine or (engine.spec.name if engine.spec.makes_images
                                               else None)
    stills = None
    if fallback is not None and stills_name:  # built only; its weights load if a t2v falls back
        stills = (keyframers.get(stills_name) or build_keyframe_engines(
            [stills_name], engine_config, engine)[stills_name])[0]
    plan = build_plan(storyboard, engine.identity(), dict(settings.engine.get("params") or {}),
                      options.profiles,
                      {name: (e.identity(), params) for name, (e, params) in keyframers.items()})
    out_root, store = open_storage(settings)  # storage.root=: shared folder or fsspec URL
    # Checked, never created here: safe names, no symlinked folder below the output root.
    out_dir = render_folder(out_root, storyboard.name, settings.variant)
    return Prepared(settings, storyboard, plan, engine, store, out_dir, fallback=fallback,
                    fallback_params=fallback_params,
                    keyframe_engines={name: e for name, (e, _) in keyframers.items()},
                    stills=stills)


def _config_problems(settings: RenderSettings, options: ValidateOptions) -> list[str]:
    """What the engine config and profiles would be refused for once the storyboard is fixed
    (without the storyboard's own profile choice, which it could not validate)."""
    try:
        engine, _, _ = build_engines(dict(settings.engine), None)
        check_engine_params(engine, settings.engine, options.profiles)
    except ConfigInvalid as exc:
        return str(exc).splitlines()
    except Exception:  # noqa: BLE001 - the storyboard's problems are reported either way
        return []
    return []


def declared_profiles(model, override: str | None) -> set[str]:
    """The profile names a render uses: the command line's, else every one the storyboard
    declares (top level, defaults, shots)."""
    if override is not None:
        return {override}
    names = {model.profile, model.defaults.profile if model.defaults else None}
    names |= {shot.profile for shot in model.shots}
    return {n for n in names if n is not None}


def print_plan(prepared: Prepared, file: TextIO | None = None) -> None:
    """The dry-run table: every segment with its frames, seconds and cache status (on `file`,
    else the current sys.stdout: a default bound at import would miss a later redirection)."""
    file = file or sys.stdout
    plan, store = prepared.plan, prepared.store
    print(f"Plan for {plan.name} ({plan.storyboard_path.name}): engine {plan.engine.get('engine')}, "
          f"{plan.width}x{plan.height} at {plan.fps} fps, post "
          f"{', '.join(s.stage for s in plan.post) or 'none'}, output {plan.output_fps:g} fps",
          file=file)
    print(f"{'shot':<12}{'seg':>4}{'frames':>8}{'seconds':>9}  {'start':<18}{'cache':<6} prompt",
          file=file)
    hits = total = 0
    for job in plan.keyframes():  # generated before the segments that start or end on them
        hit = store.has("keyframe", job.key)
        prompt = job.prompt if len(job.prompt) <= 48 else job.prompt[:45] + "..."
        print(f"{job.shot_id:<12}{'kf':>4}{'1':>8}{'-':>9}  {job.which + ' keyframe':<18}"
              f"{'hit' if hit else 'miss':<6} {prompt}  ({job.engine})", file=file)
    for shot in plan.shots:
        for job in shot.segments:
            hit = store.has("segment", job.key)
            hits += hit
            total += 1
            start = job.start.kind if job.start.kind != "chain" else f"chain {job.start.upstream}"
            if job.chain.mode != "last_frame" and job.start.kind == "chain":
                start = f"{job.chain.mode} {job.start.upstream}"
            prompt = job.prompt if len(job.prompt) <= 48 else job.prompt[:45] + "..."
            note = "" if shot.include else "  (needed for chaining, not in output)"
            print(f"{shot.id:<12}{job.index:>4}{job.frames:>8}{job.frames / job.fps:>9.2f}  "
                  f"{start:<18}{'hit' if hit else 'miss':<6} {prompt}{note}", file=file)
    seconds = sum(s.post_frames for s in plan.included()) / plan.post_fps
    keyframes = list(plan.keyframes())
    if keyframes:
        cached = sum(store.has("keyframe", k.key) for k in keyframes)
        print(f"{len(keyframes)} keyframes ({cached} cached, {len(keyframes) - cached} to "
              "generate)", file=file)
    print(f"{total} segments ({hits} cached, {total - hits} to render), about {seconds:.1f}s of "
          f"video; output in {prepared.out_dir}", file=file)
    for line in control_summary(plan, store):  # control clips, animate shots' keypoints
        print(line, file=file)
    for note in plan.notes:
        print(f"note: {note}", file=file)
    if plan.reactive is not None:  # audio.reactive: tempo, beats, mappings
        for line in plan.reactive.summary():
            print(line, file=file)
    for warning in plan.warnings:
        print(f"warning: {warning}", file=file)

"""Checks of one shot against the engine and the file system: lengths, prompts, images, start
and end frames, camera keyframes, chain modes, generation keys, input files and the schedule.

`Checker` also collects the problems and warnings of the whole validation (stages.storyboard.
validate); each check reads the shot through the resolver (stages.storyboard.resolve), so it
sees exactly what the planner will.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PIL import Image, UnidentifiedImageError

from engine.base import EngineSpec
from engine.registry import available_engines, engine_spec
from stages.plan.animate import is_animate
from stages.plan.chaining import chain_lead
from stages.storyboard.image_refs import ImageRefError, ImageResolver
from stages.storyboard.problems import Problem
from stages.storyboard.resolve import resolve_shot, shot_seconds
from stages.storyboard.schema import (
    GenerationKeys,
    Shot,
    ShotDefaults,
    image_file,
    image_generated,
)
from stages.storyboard.schema.camera import camera_keys
from stages.storyboard.yaml_source import KeyPath, YamlSource, format_key_path

MAX_IMAGE_PIXELS = 8192 * 8192
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".avi")


class Checker:
    """Cross-field checks on a storyboard whose values are individually valid."""

    def __init__(self, source: YamlSource, file: str, engine: EngineSpec,
                 resolver: ImageResolver | None = None):
        self.source, self.file, self.engine = source, file, engine
        self.resolver = resolver or ImageResolver(source.path.parent)
        self.problems: list[Problem] = []
        self.warnings: list[str] = []

    def add(self, path: KeyPath, message: str) -> None:
        self.problems.append(
            Problem(self.file, format_key_path(path), message, self.source.line_of(path))
        )

    def image(self, path: KeyPath, relative: str, what: str = "image", remote: bool = True,
              read: Callable[[Path], object] | None = None,
              hint: str = "use PNG or JPEG") -> None:
        """An image file the storyboard names: confined, present, not too large, and readable
        (Pillow's verify and load; `read`, when given, reads it as its user will and may raise
        a ValueError whose message is the problem). `what` names it in messages."""
        try:
            full = self.resolver.resolve(relative, what, remote=remote)
        except ImageRefError as exc:
            self.add(path, str(exc))
            return
        if not full.exists():
            self.add(path, f"{what} {relative!r} not found (looked at {full}); paths are "
                           "relative to the storyboard file")
            return
        if not full.is_file():
            self.add(path, f"{what} {relative!r} is not a file")
            return
        try:
            with Image.open(full) as img:
                width, height = img.size
                if width * height > MAX_IMAGE_PIXELS:
                    self.add(path, f"{what} {relative!r} is {width}x{height}, larger than the "
                                   f"limit of {MAX_IMAGE_PIXELS} pixels; scale it down")
                    return
                img.verify()
            with Image.open(full) as img:
                img.load()  # verify() misses truncated pixel data
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError,
                ValueError) as exc:
            self.add(path, f"{what} {relative!r} is not a readable image ({exc}); {hint}")
            return
        if read is not None:
            try:
                read(full)
            except (OSError, ValueError) as exc:
                self.add(path, str(exc))

    def shot(self, index: int, shot: Shot, defaults: ShotDefaults | None, fps: int) -> None:
        base: KeyPath = ("shots", index)
        if shot.start == "chain" and index == 0:
            self.add(base + ("start",), "'chain' on the first shot: there is no previous shot "
                                        "to chain from; remove it or give an image")
        rs = resolve_shot(shot, defaults)
        image = rs.image
        # An animate shot takes no pixels from the shot it chains from: its image (the
        # character) is allowed with `start: chain` (stages.plan.animate).
        chains = shot.start == "chain" and not is_animate(self.engine, rs)
        if chains and image_generated(shot.image) is not None:
            self.add(base + ("image", "generate"), "a chained shot starts from the previous "
                                                   "shot's last frame, so it cannot also "
                                                   "generate a start image; remove one")
        elif chains and shot.image is not None:
            self.add(base + ("image",), "a shot cannot both chain from the previous shot "
                                        "and start from an image; remove one")
        if shot.segments:
            for key in ("duration", "frames"):
                if getattr(shot, key) is not None:
                    self.add(base + (key,), f"a shot with segments takes its length from "
                                            f"them; move {key!r} onto each segment")
        paths = [base + ("segments", i) for i in range(len(shot.segments))] \
            if shot.segments else [base]
        for path, seg in zip(paths, rs.segments()):
            holder = seg.seg or shot
            if holder.duration is not None and holder.frames is not None:
                self.add(path + ("frames",), "set either duration or frames, not both")
            if seg.seconds(fps) is None:
                self.add(path + ("duration",), "required: give a duration (like '5s') or "
                                               "frames (here, on the shot, or in defaults)")
            if not seg.prompt and not (
                    shot.prompts and 0.0 in shot.prompts):
                self.add(path + ("prompt",), "required: every segment needs a prompt "
                                             "(here, on the shot, in defaults, or a `prompts:` "
                                             "schedule entry at 0s)")
            if seg.end_image is not None:
                self.image(path + ("end_image",), seg.end_image)
        for key in ("image", "end_image"):
            value = image_file(getattr(shot, key))  # a generate block: checks.cast
            if value is not None:
                self.image(base + (key,), value)
        self._modes(base, shot, defaults, image)
        self._camera(base, shot, defaults, fps)
        self._generation(base, shot, defaults, fps)
        self._chain(base, shot, defaults)
        self._schedule(base, shot, defaults, fps)

    def _chain(self, base: KeyPath, shot: Shot, defaults: ShotDefaults | None) -> None:
        """The shot's chain mode against what the engine can hand over between segments."""
        rs = resolve_shot(shot, defaults)
        chain = rs.chain
        if chain is None:
            return
        where = rs.where("chain", base)
        engine = self.engine
        if chain.mode not in engine.chain_modes:
            able = [name for name in available_engines()
                    if chain.mode in engine_spec(name).chain_modes]
            self.add(where + ("mode",), f"engine {engine.name!r} cannot chain segments by "
                                        f"{chain.mode!r} (it can: "
                                        f"{', '.join(sorted(engine.chain_modes))}); use one of "
                                        f"those, or an engine that can ({', '.join(able)})")
            return
        lead = chain_lead(chain, engine)
        if lead * 2 > engine.max_frames:
            self.add(where, f"chain {chain.mode!r} shares {lead} frames between segments, but "
                            f"engine {engine.name!r} renders at most {engine.max_frames} per "
                            f"segment; use a smaller overlap / motion_latents")
        if chain.anchor is not None and shot.chain is not None:
            self.image(where + ("anchor",), chain.anchor)
        if chain.mode == "overlap" and not engine.context_frames:
            self.warnings.append(
                f"shot {shot.id}: engine {engine.name!r} conditions on one start frame, so "
                f"overlap segments start from the first overlap frame and the join blends "
                f"them (wan_vace conditions on all of them)")


    def _schedule(self, base: KeyPath, shot: Shot, defaults: ShotDefaults | None,
                  fps: int) -> None:
        if not shot.prompts:
            return
        length = shot_seconds(shot, defaults, fps)
        for at in shot.prompts:
            if length is not None and at >= length:
                self.add(base + ("prompts", f"{at:g}s"),
                         f"prompt at {at:g}s is at or past the end of the shot ({length:g}s)")
        if shot.segments and all(seg.prompt for seg in shot.segments):
            self.warnings.append(f"shot {shot.id}: every segment has its own prompt, so the "
                                 f"`prompts:` schedule is not used")

    def input_file(self, path: KeyPath, relative: str, what: str,
                   suffixes: tuple[str, ...]) -> None:
        """A non-image input (a LoRA, a source video): confined like images, must exist."""
        try:
            self.resolver.file(relative, what, suffixes)
        except ImageRefError as exc:
            self.add(path, str(exc))

    def _file_once(self, path: KeyPath, relative: str, what: str,
                   suffixes: tuple[str, ...] = (), must_exist: bool = True) -> None:
        """`input_file` for a key every shot inherits (defaults.*): reported once, not per shot.
        `must_exist=False`: only confined (a key the engine ignores is never opened)."""
        done = self.__dict__.setdefault("_files_checked", set())
        if path in done:
            return
        done.add(path)
        if must_exist:
            self.input_file(path, relative, what, suffixes)
            return
        try:
            self.resolver.resolve(relative, what, remote=False)
        except ImageRefError as exc:
            self.add(path, str(exc))

    def _generation(self, base: KeyPath, shot: Shot, defaults: ShotDefaults | None,
                    fps: int) -> None:
        """Generation keys against what the engine honours and requires."""
        engine = self.engine
        holders = [(base, shot)] + [(base + ("segments", i), seg)
                                    for i, seg in enumerate(shot.segments or [])]
        for path, holder in holders:
            for key in GenerationKeys.model_fields:
                if getattr(holder, key) is not None and key not in engine.honours:
                    self.warnings.append(
                        f"shot {shot.id}: {format_key_path(path + (key,))} is ignored by engine "
                        f"{engine.name!r} (it honours: {', '.join(sorted(engine.honours)) or 'none'})")
            if holder.loras and engine.experts < 2 and any(
                    lora.strength_2 is not None for lora in holder.loras):
                self.warnings.append(f"shot {shot.id}: loras strength_2 is ignored by engine "
                                     f"{engine.name!r} (one expert)")
            for i, lora in enumerate(holder.loras or []):
                self.input_file(path + ("loras", i, "path"), lora.path, "LoRA",
                          (".safetensors", ".bin", ".pt", ".pth"))
        for i, lora in enumerate((defaults.loras if defaults else None) or []):
            self._file_once(("defaults", "loras", i, "path"), lora.path, "LoRA",
                            (".safetensors", ".bin", ".pt", ".pth"))
        rs = resolve_shot(shot, defaults)
        for key in ("source_video", "driving_video"):
            value = getattr(rs, key)
            if value is None and key in engine.requires:
                self.add(base + (key,), f"required by engine {engine.name!r}: give the "
                                        f"{key.replace('_', ' ')} (a video file next to the "
                                        "storyboard)")
            elif value is not None:
                # Confined wherever it is written (the shot or defaults:); opened only when used.
                where = rs.where(key, base)
                if key not in engine.honours:
                    self.warnings.append(f"shot {shot.id}: {key} is ignored by engine "
                                         f"{engine.name!r}")
                    self._file_once(where, value, key.replace("_", " "), must_exist=False)
                else:
                    self._file_once(where, value, key.replace("_", " "), VIDEO_SUFFIXES)
        if "image" in engine.requires and not rs.image and not self._cast_images(rs):
            self.add(base + ("image",), f"required by engine {engine.name!r}: give the start "
                                        "image (the character to animate) or list a cast "
                                        "member with reference images (a chained shot's "
                                        "previous frame is never the character)")
        # Chained segments start from the previous segment's last frame: an image-to-video job.
        length = shot_seconds(shot, defaults, fps)
        splits = length is not None and length * fps + 1 > engine.max_frames
        if engine.modes <= {"t2v"} and (len(shot.segments or []) > 1 or splits):
            self.add(base + ("segments" if shot.segments else "duration",),
                     f"this shot needs several chained segments (each starts from the last "
                     f"frame of the one before), but engine {engine.name!r} is text-to-video "
                     f"only (longest segment {engine.max_frames} frames); use an image-to-video "
                     f"engine (wan21_i2v, wan22_i2v_a14b, wan22_ti2v_5b, wan_vace) or shorter "
                     f"shots")

    def _cast_images(self, rs) -> bool:
        """The shot's first cast member (as written in `cast:`) has reference images."""
        data = self.source.data
        cast = data.get("cast") if isinstance(data, dict) else None
        names = [name for name in rs.cast if isinstance(cast, dict) and name in cast]
        member = cast[names[0]] if names else None
        return isinstance(member, dict) and bool(member.get("images"))

    def _modes(self, base: KeyPath, shot: Shot, defaults: ShotDefaults | None, image) -> None:
        modes = self.engine.modes
        ends = [resolve_shot(shot, defaults).end_image] + [s.end_image
                                                            for s in shot.segments or []]
        if any(ends) and "flf2v" not in modes and "i2v" not in modes:
            self.add(base + ("end_image",), f"engine {self.engine.name!r} cannot end on an "
                                            f"image (modes: {', '.join(sorted(modes))})")
        if (image or shot.start == "chain") and not modes & {"i2v", "animate"}:
            self.add(base + ("image",), f"engine {self.engine.name!r} cannot start from an "
                                        f"image (modes: {', '.join(sorted(modes))})")

    def _camera(self, base: KeyPath, shot: Shot, defaults: ShotDefaults | None, fps: int) -> None:
        rs = resolve_shot(shot, defaults)
        camera = rs.camera
        keys = camera_keys(camera)
        if keys is None:
            return
        where = rs.where("camera", base)
        if not isinstance(camera, list):
            where = where + ("keys",)
        length = shot_seconds(shot, defaults, fps)
        previous = -1.0
        for i, key in enumerate(keys):
            if key.at <= previous:
                self.add(where + (i, "at"), f"keyframe at {key.at:g}s is not after the previous "
                                            f"one ({previous:g}s); keyframes must be in order")
            if length is not None and key.at > length + 1e-9:
                self.add(where + (i, "at"), f"keyframe at {key.at:g}s is past the end of the "
                                            f"shot ({length:g}s)")
            previous = key.at

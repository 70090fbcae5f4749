"""Checks across shots and of the episode as a whole: transitions between shots, generated
transitions, render profiles, what the post chain makes of the frames, and the soundtrack."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from engine.suggest import did_you_mean
from stages.plan.keys import file_sha256
from stages.plan.profiles import ProfileChoice
from stages.post.chain import chain_fps, chain_size
from stages.render.audio import AudioTrack, probe
from stages.storyboard.checks.shot import Checker
from stages.storyboard.image_refs import ImageRefError
from stages.storyboard.problems import Problem
from stages.storyboard.resolve import resolve_shot, shot_seconds
from stages.storyboard.schema import Audio, ShotDefaults, Shot, Storyboard, Transition, bridge_id
from stages.storyboard.yaml_source import KeyPath


def check_transitions(checker: Checker, shots: Sequence[Shot],
                      defaults: ShotDefaults | None, fps: int) -> None:
    """Blends no longer than the shots they join; generated clips' names free."""
    ids = {shot.id for shot in shots}
    blends: dict[int, tuple[str, float]] = {}  # boundary index -> (shot id, seconds)
    for i, (shot, after) in enumerate(zip(shots, shots[1:])):
        rs = resolve_shot(shot, defaults)
        transition = rs.transition
        if transition is None or transition.type == "cut":
            continue
        where = rs.where("transition", ("shots", i))
        if transition.type == "generated":
            # A subset render bridges the shots it keeps: any later shot may follow.
            taken = sorted(bridge_id(shot.id, later.id) for later in shots[i + 1:]
                           if bridge_id(shot.id, later.id) in ids)
            if taken:
                checker.add(where + ("type",), f"the clip this generated transition renders "
                                            f"would be named {taken[0]!r}, which is also a "
                                            f"shot id: rename that shot (ids with '__' are "
                                            f"how generated clips are named)")
            continue
        # A crossfade or morph overlaps the two shots by its duration: together with the
        # shot's other blend it must fit inside each shot, or the shot is swallowed and
        # the episode comes out shorter than planned.
        before_in = blends[i - 1][1] if i > 0 and blends.get(i - 1) else 0.0
        after_out = _blend(resolve_shot(after, defaults).transition) \
            if i + 2 < len(shots) else 0.0
        for other, sec, used in ((shot, shot_seconds(shot, defaults, fps), before_in),
                                 (after, shot_seconds(after, defaults, fps), after_out)):
            if sec is not None and transition.duration + used > sec + 1e-9:
                extra = f" plus its other {used:g}s blend" if used else ""
                checker.add(where + ("duration",), f"a {transition.duration:g}s "
                                                f"{transition.type}{extra} is longer than "
                                                f"shot {other.id} ({sec:g}s): it would "
                                                f"swallow the shot and shorten the episode; "
                                                f"shorten the transition or lengthen the "
                                                f"shot")
                break
        blends[i] = (shot.id, transition.duration)


def check_generated_transitions(checker: Checker, shots: Sequence[Shot],
                                defaults: ShotDefaults | None) -> None:
    """`transition: {type: generated}` renders a first-last-frame clip into the next shot."""
    for i, shot in enumerate(shots[:-1]):
        rs = resolve_shot(shot, defaults)
        transition = rs.transition
        if transition is None or transition.type != "generated":
            continue
        where = rs.where("transition", ("shots", i))
        if "flf2v" not in checker.engine.modes:
            checker.add(where + ("type",), f"a generated transition needs an engine that "
                                        f"renders from a first to a last frame; "
                                        f"{checker.engine.name!r} cannot (modes: "
                                        f"{', '.join(sorted(checker.engine.modes))}); use "
                                        f"crossfade or interpolated, or another engine")
        elif shots[i + 1].start == "chain":
            checker.add(where + ("type",), f"shot {shots[i + 1].id} chains from this shot's "
                                        f"last frame, so there is no gap to bridge; use "
                                        f"a cut or remove `start: chain` there")


# What the encoder can take (H.264 level 6.2 is 8192x4320) and what Output.fps allows.
MAX_OUTPUT_SIDE = 8192
MAX_OUTPUT_FPS = 240.0


def check_post_output(checker: Checker, post: Sequence[Any], width: int, height: int,
                       fps: float, from_storyboard: bool) -> None:
    """The frames the whole post chain produces must be encodable: a chain of upscales or
    interpolations that multiplies past the limits fails here, not after hours of rendering
    with a huge allocation."""
    out_width, out_height = chain_size(post, width, height)
    out_fps = chain_fps(post, fps)
    problems = []
    if max(out_width, out_height) > MAX_OUTPUT_SIDE:
        problems.append(f"the chain makes {out_width}x{out_height} frames from {width}x{height}; "
                        f"at most {MAX_OUTPUT_SIDE} pixels a side can be encoded: lower the "
                        f"upscale factors (or the resolution)")
    if out_fps > MAX_OUTPUT_FPS:
        problems.append(f"the chain makes {out_fps:g} fps from {fps:g}; at most "
                        f"{MAX_OUTPUT_FPS:g} fps: lower the interpolation factors")
    for message in problems:
        if from_storyboard:
            checker.add(("post",), message)
        else:
            checker.problems.append(Problem("command line", "post", message))


def _blend(transition: Transition | None) -> float:
    """Seconds a transition overlaps the shots it joins (cuts and generated clips: none)."""
    if transition is None or transition.type in ("cut", "generated"):
        return 0.0
    return float(transition.duration)


def check_profiles(checker: Checker, model: Storyboard, choice: ProfileChoice) -> None:
    """Profile names the engine config defines; engine options only for the whole render."""
    known = sorted(choice.profiles)
    engine = checker.engine.name

    def unknown(name: str) -> str:
        hint = did_you_mean(name, known)
        return (f"unknown profile {name!r} for engine {engine!r}{hint} (its profiles: "
                f"{', '.join(known) or 'none'}; they are defined in conf/engine/{engine}.yaml "
                f"under profiles:)")

    if choice.override is not None:
        if choice.override not in choice.profiles:
            checker.problems.append(Problem("command line", "profile", unknown(choice.override)))
        return  # the command line's profile replaces the storyboard's
    declared: list[tuple[KeyPath, str]] = []
    if model.profile is not None:
        declared.append((("profile",), model.profile))
    if model.defaults is not None and model.defaults.profile is not None:
        declared.append((("defaults", "profile"), model.defaults.profile))
    declared += [(("shots", i, "profile"), shot.profile) for i, shot in enumerate(model.shots)
                 if shot.profile is not None]
    for path, name in declared:
        profile = choice.get(name)
        if profile is None:
            checker.add(path, unknown(name))
        elif profile.options and path != ("profile",):
            checker.add(path, f"profile {name!r} sets engine options "
                              f"({', '.join(sorted(profile.options))}), which change how the "
                              f"model loads: set it for the whole render (`profile: {name}` at "
                              f"the top of the storyboard, or profile={name} on the command "
                              f"line)")


def audio_track(checker: Checker, audio: Audio, base: Path) -> AudioTrack | None:
    """The soundtrack, if its file exists (confined like every file a storyboard names) and
    holds an audio stream ffmpeg can read."""
    where = ("audio", "path")
    try:
        full = checker.resolver.file(audio.path, "audio file")
    except ImageRefError as exc:
        checker.add(where, str(exc))
        return None
    try:
        streams = probe(full)
    except (ValueError, OSError) as exc:
        checker.add(where, f"{audio.path!r}: {exc}")
        return None
    if not streams.audio:
        checker.add(where, f"{audio.path!r} has no audio stream; use a WAV, MP3, AAC/M4A, "
                           "FLAC or OGG file")
        return None
    return AudioTrack(full, audio.offset, audio.fade_in, audio.fade_out, audio.volume,
                      file_sha256(full))

"""Where a shot's pieces fall in time: segment lengths snapped to the engine's frame rule and
split into chained pieces, and the `prompts:` schedule snapped to piece starts."""

from __future__ import annotations

import math
from typing import Any

from stages.storyboard.resolve import ResolvedShot, ResolvedSegment
from stages.storyboard.schema import Shot


def segment_lengths(
    vs: Any, shot: ResolvedShot, lead: int
) -> tuple[list[tuple[ResolvedSegment, int]], list[str]]:
    """Frames per generation call: each storyboard segment snapped to the engine's frame rule,
    and split into equal chained pieces where it is longer than the engine's longest segment.
    `vs`: the ValidatedStoryboard. `lead`: frames a chained piece shares with the piece before
    it (1 for last_frame chaining, the overlap in overlap mode, ...); the shot's first piece
    shares one with the shot before it when the shot chains, else none."""
    rule, longest, fps = vs.engine.frame_rule, vs.engine.max_frames, vs.fps
    if vs.engine.windows:
        # The engine windows a long segment itself (wan_animate): never split into chains.
        longest = 1 << 30
    warnings: list[str] = []
    pieces: list[tuple[ResolvedSegment, int]] = []
    for i, seg in enumerate(shot.segments()):
        where = f"shot {shot.shot.id}" + (f" segment {i}" if shot.shot.segments else "")
        explicit = seg.frames()
        first_lead = (1 if shot.chained else 0) if i == 0 else lead
        if explicit is not None:
            wanted = explicit
        else:
            # A segment whose first frames repeat its upstream's needs that many frames extra.
            wanted = max(1, round(seg.seconds(fps) * fps)) + first_lead
        # Pieces after the first add `longest - lead` new frames each.
        count = 1 if wanted <= longest else math.ceil((wanted - longest) / (longest - lead)) + 1
        # Equal pieces whose coverage is nearest to `wanted` (ties go up): snap the exact length
        # per piece, not a rounded-up one (that could pick a whole frame-rule step too many).
        exact = (wanted + (count - 1) * lead) / count
        per = min(
            {min(rule.snap(n), longest) for n in (math.floor(exact), math.ceil(exact))},
            key=lambda n: (abs(n - exact), -n),
        )
        pieces += [(seg, per)] * count
        got = per + (count - 1) * (per - lead)
        if count > 1:
            warnings.append(
                f"{where}: {wanted} frames is more than one {vs.engine.name!r} segment "
                f"({longest} frames); rendering {count} chained segments of {per} frames"
            )
        elif got != wanted:
            warnings.append(
                f"{where}: {wanted} frames snapped to {got} (engine {vs.engine.name!r} needs "
                f"{rule.describe()} frames per segment)"
            )
    return pieces, warnings


def scheduled_prompts(shot: Shot, starts: list[float]) -> tuple[list[tuple[float, str] | None],
                                                                 list[str]]:
    """The schedule entry each piece uses (`prompts: {0s: ..., 4s: ...}`): every time snaps to
    the nearest piece start (`starts`, seconds), and applies from there to the next entry.
    Returns one (time, prompt) or None per piece, and a note per entry on where it landed."""
    if not shot.prompts:
        return [None] * len(starts), []
    chosen: list[tuple[float, str] | None] = [None] * len(starts)
    notes = []
    landed: dict[int, float] = {}
    for at, prompt in shot.prompts.items():
        piece = min(range(len(starts)), key=lambda i: (abs(starts[i] - at), i))
        if piece in landed:
            notes.append(f"shot {shot.id}: prompt at {at:g}s snaps to the same segment boundary "
                         f"({starts[piece]:.2f}s) as the one at {landed[piece]:g}s; it replaces "
                         f"it (segments are {_spacing(starts)} long)")
        else:
            where = "exact" if abs(starts[piece] - at) < 1e-6 else f"snapped from {at:g}s"
            notes.append(f"shot {shot.id}: prompt at {at:g}s starts at segment {piece} "
                         f"({starts[piece]:.2f}s, {where})")
        landed[piece] = at
        for i in range(piece, len(starts)):
            chosen[i] = (at, prompt)
    return chosen, notes


def _spacing(starts: list[float]) -> str:
    if len(starts) < 2:
        return "one segment"
    return f"{starts[1] - starts[0]:.2f}s"


def resampled_count(frames: int, src_fps: float, dst_fps: float) -> int:
    """How many frames `frames` at `src_fps` become at `dst_fps` (nearest-frame resampling)."""
    if frames <= 0 or math.isclose(src_fps, dst_fps):
        return frames
    return math.floor((frames - 1) * dst_fps / src_fps + 1e-9) + 1

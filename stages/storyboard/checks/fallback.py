"""Which shots the configured fallback engine could not take, said before any work.

A fallback renders a segment only when the render engine fails (out of memory, weights that do
not load, a mode it cannot do); finding out then that it cannot do the shot's mode ("svd cannot
do animate") is finding out too late. The fallback adapts what it can (stages.render.generate.adapted_mode):
animate and v2v become i2v from the reference image / source frame, flf2v drops its end image,
and a t2v shot starts from a generated keyframe when an image engine is at hand. What is left is
a warning naming the shots and why (a warning, not an error: the fallback may never be needed).
"""

from __future__ import annotations

from typing import Any

from engine.base import EngineSpec
from stages.storyboard.resolve import resolve_shot
from stages.storyboard.schema.cast import image_file, image_generated


def shot_mode(rs: Any, engine: EngineSpec) -> str:
    """The mode the shot's first segment asks of the render engine."""
    honours = engine.honours
    if rs.driving_video and "driving_video" in honours:
        return "animate"
    if rs.source_video and "source_video" in honours:
        return "v2v"
    starts = rs.chained or image_file(rs.image) is not None or image_generated(rs.image)
    return "i2v" if starts else "t2v"


def fallback_warnings(model: Any, engine: EngineSpec, fallback: EngineSpec | None,
                      stills: bool) -> list[str]:
    """One warning naming the shots `fallback` cannot take, grouped by reason. `stills`: an
    image engine is configured (keyframes.engine, or the render engine makes images)."""
    if fallback is None:
        return []
    # Imported here: stages.render imports the engines' runtime helpers, validation need not.
    from engine.base import EngineError
    from stages.render.generate import adapted_mode

    by_reason: dict[str, list[str]] = {}
    for shot in model.shots:
        rs = resolve_shot(shot, model.defaults)
        try:
            adapted_mode(shot_mode(rs, engine), fallback, stills or fallback.makes_images)
        except EngineError as exc:
            by_reason.setdefault(str(exc), []).append(shot.id)
    warnings = [f"shots {', '.join(ids)}: if the render engine fails there, the {reason}; they "
                f"would fail instead of falling back (choose a fallback with that mode, or set "
                f"keyframes.engine for t2v shots)" for reason, ids in by_reason.items()]
    # A fallback renders what it can; one without control would drop a shot's control video.
    controlled = [shot.id for shot in model.shots
                  if getattr(resolve_shot(shot, model.defaults), "control", None) is not None]
    if controlled and engine.control and not fallback.control:
        warnings.append(f"shots {', '.join(controlled)}: the fallback {fallback.name!r} takes no "
                        f"control video; a segment it renders there ignores `control:` (choose "
                        f"a fallback that takes control, e.g. wan_vace)")
    return warnings

"""Camera moves as words, for engines that only understand prompts.

The storyboard's camera path is exact (pan, zoom, roll, tilt per frame); a text-conditioned model
can only be asked. `describe_camera` compiles the net move over a segment into the phrasing these
models were captioned with ("the camera pans left", "slow zoom in") with a speed word from the
size of the move, and returns "" for a static camera.
"""

from __future__ import annotations

from typing import Sequence

from .base import CameraState

# Net change over a segment below these counts as no move (fractions of the frame / degrees).
_STILL = {"pan_x": 0.01, "pan_y": 0.01, "zoom": 0.01, "rotate": 0.5, "tilt": 0.5,
          "dolly": 0.01, "truck": 0.01, "pedestal": 0.01, "orbit": 0.5, "dolly_zoom": 0.01,
          "focus": 0.05}
# Net change at which a move counts as fast.
_FAST = {"pan_x": 0.25, "pan_y": 0.25, "zoom": 0.3, "rotate": 20.0, "tilt": 10.0,
         "dolly": 0.3, "truck": 0.25, "pedestal": 0.25, "orbit": 30.0, "dolly_zoom": 0.3,
         "focus": 0.5}
# Below this fraction of _FAST a move is "slow".
_SLOW = 0.35


def _speed(name: str, amount: float) -> str:
    ratio = abs(amount) / _FAST[name]
    if ratio >= 1:
        return "fast"
    if ratio < _SLOW:
        return "slow"
    return ""


_WORDS = {
    # pan_x > 0: the camera moves right (the picture slides left).
    "pan_x": ("the camera pans right", "the camera pans left"),
    "pan_y": ("the camera pans down", "the camera pans up"),
    "zoom": ("zoom in", "zoom out"),
    "rotate": ("the camera rolls clockwise", "the camera rolls counter-clockwise"),
    "tilt": ("the camera tilts up", "the camera tilts down"),
    # 2.5D moves (a depth map makes them exact on the preview and in guides; words elsewhere).
    "dolly": ("dolly in", "dolly out"),
    "truck": ("the camera trucks right", "the camera trucks left"),
    "pedestal": ("the camera rises", "the camera lowers"),
    "orbit": ("the camera orbits right around the subject",
              "the camera orbits left around the subject"),
    "dolly_zoom": ("dolly zoom, the background stretches away",
                   "reverse dolly zoom, the background closes in"),
    "focus": ("rack focus to the foreground", "rack focus to the background"),
}
# Phrased like zoom ("slow dolly in"), not with a trailing adverb.
_LEADING_SPEED = ("zoom", "dolly", "dolly_zoom")
_ADVERB = {"fast": " quickly", "slow": " slowly", "": ""}


def camera_phrases(path: Sequence[CameraState]) -> list[str]:
    """One phrase per axis that moves, largest move first."""
    if len(path) < 2:
        return []
    first, last = path[0], path[-1]
    moves = {
        "pan_x": last.pan_x - first.pan_x,
        "pan_y": last.pan_y - first.pan_y,
        "zoom": last.zoom - first.zoom,
        "rotate": last.rotate - first.rotate,
        "tilt": last.tilt - first.tilt,
        **{name: getattr(last, name) - getattr(first, name)
           for name in ("dolly", "truck", "pedestal", "orbit", "dolly_zoom")},
    }
    if max(first.aperture, last.aperture) > 0.0:  # a focus pull shows only with depth of field
        moves["focus"] = last.focus - first.focus
    ranked = sorted(((abs(v) / _FAST[k], k, v) for k, v in moves.items()
                     if abs(v) >= _STILL[k]), reverse=True)
    phrases = []
    for _ratio, name, value in ranked:
        phrase = _WORDS[name][0 if value > 0 else 1]
        speed = _speed(name, value)
        if name in _LEADING_SPEED:  # "slow zoom in", "fast dolly out"
            phrases.append(f"{speed} {phrase}".strip())
        else:  # "the camera pans left slowly"
            phrases.append(phrase + _ADVERB[speed])
    return phrases


def describe_camera(path: Sequence[CameraState]) -> str:
    """Empty for a static camera, else e.g. "the camera pans left slowly, slow zoom in"."""
    phrases = camera_phrases(path)
    return ", ".join(phrases)


def with_camera(prompt: str, path: Sequence[CameraState]) -> str:
    """The prompt with the camera phrasing appended as its own sentence."""
    text = describe_camera(path)
    if not text:
        return prompt
    sep = "" if not prompt or prompt.rstrip().endswith((".", "!", "?")) else "."
    return f"{prompt.rstrip()}{sep} Camera: {text}."

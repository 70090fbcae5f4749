"""Audio-reactive mappings in a storyboard: `audio: {path: ..., reactive: [...]}`.

Each mapping drives one parameter from one feature of the soundtrack (stages.audio.analysis):
camera values per frame, generation keys per segment, colour per episode frame. stages.audio.
schedules turns them into values; stages.storyboard.schema adds the list to `Audio`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from engine.suggest import did_you_mean
from stages.storyboard.schema.camera import CAMERA_KEYS, CAMERA_RANGES
from stages.storyboard.schema.types import _Model
from stages.storyboard.units import parse_duration

# Where a mapping's value goes. Camera params come from CAMERA_KEYS at import time, so camera
# values added there are reactive without an edit here.
GENERATION_PARAMS = ("flow_shift", "cfg")
COLOR_PARAMS = ("hue", "saturation", "exposure")
# Limits on `amount` for the non-camera params (camera params use CAMERA_RANGES): beyond them a
# mapping is almost surely a unit mistake (hue is degrees, exposure stops, saturation a fraction).
AMOUNT_RANGES: dict[str, tuple[float, float]] = {
    "flow_shift": (-20.0, 20.0),
    "cfg": (-20.0, 20.0),
    "hue": (-180.0, 180.0),
    "saturation": (-1.0, 4.0),
    "exposure": (-4.0, 4.0),
}
MAX_DECAY_S = 10.0

Source = Literal["beats", "onsets", "bass", "mid", "treble", "loudness"]
IMPULSE_SOURCES = ("beats", "onsets")


def reactive_params() -> tuple[str, ...]:
    """Every param a mapping may drive: camera values, then generation keys, then colour."""
    return tuple(CAMERA_KEYS) + GENERATION_PARAMS + COLOR_PARAMS


def param_kind(param: str) -> str:
    """"camera" (per frame), "generation" (per segment) or "color" (per episode frame)."""
    if param in GENERATION_PARAMS:
        return "generation"
    if param in COLOR_PARAMS:
        return "color"
    return "camera"


def _decay(value: Any) -> float:
    seconds = parse_duration(value)
    if not 0 < seconds <= MAX_DECAY_S:
        raise ValueError(f"{value!r} must be longer than 0s and at most {MAX_DECAY_S:g}s "
                         "(e.g. '0.25s')")
    return seconds


class ReactiveMapping(_Model):
    """One parameter driven by one feature of the soundtrack; the value adds to what the
    storyboard sets: `{param: zoom, source: beats, amount: 0.04, decay: 0.25s}`."""

    param: Annotated[str, Field(json_schema_extra={"enum": list(reactive_params())})]
    """What the audio drives: a camera value (zoom, pan_x, ...; per frame), flow_shift or cfg
    (per segment: the mean over its frames) or hue (degrees), saturation (fraction),
    exposure (stops) as a colour grade of the episode (per frame)."""
    source: Source
    """The audio feature: beats or onsets (an impulse of 1 on each, decaying over `decay`),
    bass (20-250 Hz), mid (250-2000 Hz), treble (2-11 kHz) energy or loudness (0..1 envelopes)."""
    amount: float
    """The value at full envelope (on a beat, at the track's loudest): value = amount x envelope."""
    decay: Annotated[float, BeforeValidator(_decay)] = 0.25
    """beats/onsets: time constant of the exponential decay after each impulse ('0.25s'); the
    envelopes of bass, mid, treble and loudness do not use it."""

    @field_validator("param")
    @classmethod
    def _known_param(cls, value: str) -> str:
        known = reactive_params()
        if value not in known:
            raise ValueError(f"unknown param {value!r}{did_you_mean(value, known)} "
                             f"(one of: {', '.join(known)})")
        return value

    @model_validator(mode="after")
    def _amount_in_range(self):
        low, high = CAMERA_RANGES.get(self.param) or AMOUNT_RANGES.get(self.param, (-1e9, 1e9))
        if not low <= self.amount <= high:
            raise ValueError(f"amount={self.amount!r} for {self.param} is out of range "
                             f"[{low:g}, {high:g}]")
        return self

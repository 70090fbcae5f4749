"""Parsing of the small value types storyboards use: durations and resolutions."""

from __future__ import annotations

import math
import re

# A sign is accepted so that '-2s' is reported as negative, not as unparsable.
_DURATION = re.compile(r"^\s*([-+]?(?:\d+(?:\.\d+)?|\.\d+))\s*(ms|s)?\s*$")
_RESOLUTION = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_duration(value: object) -> float:
    """'5s', '2.5s', '500ms' or a plain number (seconds) -> seconds as float.

    Raises ValueError with a message meant for the user (it ends up next to the key path).
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; use seconds like '5s' or '2.5s'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(
                f"{value!r} is not a duration; use seconds like '5s', '2.5s' or '500ms'"
            )
        seconds = float(match.group(1)) / (1000.0 if match.group(2) == "ms" else 1.0)
    else:
        raise ValueError(f"{value!r} is not a duration; use seconds like '5s' or '2.5s'")
    if not math.isfinite(seconds):
        raise ValueError(f"{value!r} is not a finite duration")
    return seconds


def parse_resolution(value: object) -> tuple[int, int]:
    """'832x480' -> (832, 480) as (width, height)."""
    if isinstance(value, str):
        match = _RESOLUTION.match(value)
        if match:
            return int(match.group(1)), int(match.group(2))
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return int(value[0]), int(value[1])
    raise ValueError(f"{value!r} is not a resolution; use WIDTHxHEIGHT like '832x480'")

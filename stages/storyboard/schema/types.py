"""The storyboard schema's value types: lengths, seeds, text and paths, and the base model.

Split from stages.storyboard.schema (which re-exports every name) so that the models of one
concern (stages.storyboard.schema.cast) can use them without importing the whole schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from stages.storyboard.units import parse_duration

MAX_SHOT_SECONDS = 600.0
MAX_FRAMES = 10_000
MAX_FPS = 120
MIN_SIDE, MAX_SIDE = 64, 4096
MAX_SEED = 2**63 - 1
SHOT_ID = re.compile(r"^[a-z0-9_-]{1,64}$")
# A render profile's name (stages.plan.profiles): defined per engine in conf/engine/<name>.yaml.
ProfileName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$", strict=True)]



def _duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"{value!r} must be longer than zero")
    if seconds > MAX_SHOT_SECONDS:
        raise ValueError(
            f"{value!r} is longer than the limit of {MAX_SHOT_SECONDS:g}s per shot; "
            "split it into several shots"
        )
    return seconds


def _time(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds < 0:
        raise ValueError(f"{value!r} is negative; keyframe times start at 0s")
    return seconds


Duration = Annotated[float, BeforeValidator(_duration)]
TimePoint = Annotated[float, BeforeValidator(_time)]
Frames = Annotated[int, Field(ge=1, le=MAX_FRAMES, strict=True)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED, strict=True)]
# Control characters break file names, terminals and the HTML report, and are never meant:
# text may hold tabs and line breaks, paths and names nothing of the kind.
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ANY_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _control_free(pattern: re.Pattern, what: str):
    def check(value: str) -> str:
        found = pattern.search(value)
        if found:
            raise ValueError(f"control character U+{ord(found.group()):04X} at position "
                             f"{found.start()} is not allowed in {what}")
        return value
    return AfterValidator(check)


Text = Annotated[str, Field(max_length=4000, strict=True), _control_free(_TEXT_CONTROL, "text")]
ImagePath = Annotated[str, Field(min_length=1, max_length=1024, strict=True),
                      _control_free(_ANY_CONTROL, "a path")]
# A storyboard renders in one process and one episode; a series is many storyboards.
MAX_SHOTS = 2000


@dataclass(frozen=True)
class NamesOf:
    """Annotated metadata on a string that names something installed (`post_preset`,
    `engine`, `image_engine`, `post_stage`): validation checks such names itself (with
    did-you-mean hints), and flows.schema puts the installed names into the JSON Schema as an
    enum where it finds this mark, so editors complete them. Nothing else reads it."""

    kind: str

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        schema = handler(core_schema)
        schema[NAMES_OF] = self.kind
        return schema


NAMES_OF = "x-reelforge-names-of"


class _Model(BaseModel):
    """Every storyboard model: unknown keys are errors, values are immutable. A field's
    docstring (the string literal on the line after it) is its description: the JSON Schema's,
    so editors show it on hover, and `python -m flows.render --help`'s (tests/flows/test_schema.py
    fails when a field has none)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


Guidance = Annotated[float, Field(ge=0.0, le=30.0)]

"""The schema of recurring cast members and generated keyframes (README "Cast and keyframes").

`cast:` (top level: name -> member; on shots and in `defaults:`: a list of names) and the
`image: {generate: ...}` form of a shot's start and end image. What they mean for a shot is
stages.storyboard.cast (expansion of `{name}`) and stages.plan.keyframes (keyframe jobs).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Union

from pydantic import Discriminator, Field, Tag

from stages.storyboard.schema.types import Guidance, ImagePath, NamesOf, Seed, Text, _Model

# A cast member's name (storyboard `cast:`), written as `{name}` in prompts: like a shot id, but
# without '-' would be awkward in prose; ids' characters are kept so a name can double as a label.
CAST_NAME = re.compile(r"^[a-z0-9_-]{1,64}$")
CastName = Annotated[str, Field(pattern=CAST_NAME.pattern, strict=True)]
MAX_REFERENCES = 3  # per member: more seldom helps identity and every one costs memory


class CastMember(_Model):
    """A character, prop or place that recurs (README "Cast and keyframes"): its reference
    images condition engines that take references, its description replaces `{name}` in prompts,
    its seed base seeds the shots that list it first and set no seed."""

    images: list[ImagePath] = Field(min_length=1, max_length=MAX_REFERENCES)
    """1-3 reference images (paths relative to the storyboard) of the member."""
    description: Text | None = None
    """Words that replace `{name}` in every prompt that mentions the member."""
    seed: Seed | None = None
    """Base seed of the shots that list this member first in `cast:` and set no seed."""


class KeyframeGen(_Model):
    """`image: {generate: ...}`: a start (or end) image made by an image engine before the shot
    renders (stages.plan.keyframes)."""

    generate: Annotated[Text, Field(min_length=1)]
    """The image prompt of the keyframe (`{name}` cast references expand)."""
    engine: Annotated[str, Field(min_length=1, max_length=64, strict=True),
                      NamesOf("image_engine")] | None = None
    """Image engine that makes it (sdxl, flux, ...); default: the config's `keyframes.engine`,
    else the render engine when it makes images."""
    seed: Seed | None = None
    """Seed of the image; default: the shot's `seed`, else one derived from the seed base."""
    negative: Text | None = None
    """Negative prompt of the image; default: the shot's `negative`."""
    steps: Annotated[int, Field(ge=1, le=500, strict=True)] | None = None
    """Sampling steps of the image; default: the image engine's."""
    cfg: Guidance | None = None
    """Guidance scale (0-30) of the image; default: the image engine's."""


def _image_kind(value: Any) -> str | None:
    # By shape, as the camera's forms: a path's errors or a generate block's, never both.
    if isinstance(value, (dict, KeyframeGen)):
        return "generate"
    return "path"


ImageSource = Annotated[
    Union[Annotated[ImagePath, Tag("path")], Annotated[KeyframeGen, Tag("generate")]],
    Discriminator(_image_kind),
]


def image_file(value: Any) -> str | None:
    """The path of an image key, None when it is unset or a generate block."""
    return value if isinstance(value, str) else None


def image_generated(value: Any) -> KeyframeGen | None:
    return value if isinstance(value, KeyframeGen) else None

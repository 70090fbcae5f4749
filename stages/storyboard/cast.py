"""`{name}` in prompts: the one expansion rule for cast members (README "Cast and keyframes").

In a storyboard with a `cast:` section, `{name}` in a prompt, a negative prompt, a `prompts:`
schedule entry, a transition prompt or a keyframe's `generate:` text is replaced by that member's
description (its name when it has none), for the members the shot lists. `{{` and `}}` write a
literal brace. `${...}` is never a placeholder: storyboards pass `${...}` to the engine verbatim
(DESIGN.md), so `${keeper}` stays as written. A storyboard without `cast:` is never expanded, so
its prompts (and content keys) are exactly what they always were.
"""

from __future__ import annotations

import re
from typing import Mapping

from stages.storyboard.schema import CastMember

# A placeholder is a cast-name between single braces, not preceded by `$`; `{{` / `}}` escape.
_TOKEN = re.compile(r"\{\{|\}\}|(?<!\$)\{([a-z0-9_-]{1,64})\}")


def placeholders(text: str | None) -> list[str]:
    """The member names `text` refers to, in order of first use."""
    if not text:
        return []
    seen: dict[str, None] = {}
    for match in _TOKEN.finditer(text):
        if match.group(1):
            seen.setdefault(match.group(1))
    return list(seen)


def expand(text: str | None, cast: Mapping[str, CastMember] | None) -> str | None:
    """`text` with every `{name}` replaced (see the module's rule); `cast` is the storyboard's
    whole `cast:` (None: no cast section, nothing is expanded). Validation has checked that
    each name is one the shot lists, so an unknown one here is left as written."""
    if text is None or cast is None:
        return text

    def one(match: re.Match) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        member = cast.get(match.group(1))
        if member is None:
            return token
        return member.description or match.group(1)

    return _TOKEN.sub(one, text)

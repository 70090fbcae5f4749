""""Did you mean ...?" for every name a user can mistype (engines, keys, stages, shots, presets).

It lives in engine/, the bottom layer, so stages/ and flows/ can use it too: one wording and one
closeness rule everywhere."""

from __future__ import annotations

import difflib
from typing import Iterable


def did_you_mean(word: object, known: Iterable[str], *, sentence: bool = False, n: int = 1,
                 cutoff: float = 0.6) -> str:
    """The hint to append to a message about `word`, or "" when nothing in `known` is close:
    "; did you mean 'x'?" (inside a message) or " Did you mean 'x'?" (`sentence`: after one)."""
    close = difflib.get_close_matches(str(word), list(known), n=n, cutoff=cutoff)
    if not close:
        return ""
    names = " or ".join(repr(c) for c in close)
    return f" Did you mean {names}?" if sentence else f"; did you mean {names}?"

"""The engines this project ships, registered when the `engine` package is imported: the
embedded `preview` engine and every engine of the diffusers families (engine.diffusers.families,
each spec beside its class). No torch or diffusers loads here: only when a pipeline does.
"""

from __future__ import annotations

from .diffusers.families import DIFFUSERS_SPECS
from .preview import PREVIEW_SPEC, PreviewEngine
from .registry import register

BUILTIN_ENGINES: tuple[str, ...] = ("preview", *DIFFUSERS_SPECS)

register("preview", PREVIEW_SPEC, PreviewEngine)
for _name, (_spec, _cls) in DIFFUSERS_SPECS.items():
    register(_name, _spec, _cls)

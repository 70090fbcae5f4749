"""The diffusers engine families: one module per family (wan, hunyuan, ltx, cogvideox, svd).

Each module declares its engines' EngineSpecs (plain data: frame rule, sizes, modes, honoured
storyboard keys) beside the engine classes that use them, and lists its engines in `ENGINES`.
Importing a family loads no torch or diffusers: they load when an engine loads its pipeline.
A new family is one module here (specs + classes + ENGINES), added to `FAMILIES` below, and one
conf/engine/<name>.yaml per engine.
"""

from __future__ import annotations

from ...base import EngineSpec
from . import cogvideox, hunyuan, ltx, svd, wan

FAMILIES = (wan, hunyuan, ltx, cogvideox, svd)

# Engine name -> (spec, engine class), for the registry (engine.registry registers each).
DIFFUSERS_SPECS: dict[str, tuple[EngineSpec, type]] = {
    cls.spec.name: (cls.spec, cls) for family in FAMILIES for cls in family.ENGINES}

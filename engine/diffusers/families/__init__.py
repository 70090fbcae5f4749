"""The diffusers engine families: one module per family (wan, hunyuan, ltx, cogvideox, svd).

Each module declares its engines' EngineSpecs (plain data: frame rule, sizes, modes, honoured
storyboard keys) beside the engine classes that use them, and lists its engines in `ENGINES`.
Importing a family loads no torch or diffusers: they load when an engine loads its pipeline.
A new family is one module here (specs + classes + ENGINES), found by the scan below, and one
conf/engine/<name>.yaml per engine: no list to edit.
"""

from __future__ import annotations

import importlib
import pkgutil

from ...base import EngineSpec

# Every module of this package that declares ENGINES is a family (helpers such as
# wan_conditioning declare none), imported in name order so registration is deterministic.
FAMILIES = tuple(
    module for module in (importlib.import_module(f"{__name__}.{info.name}")
                          for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name))
    if hasattr(module, "ENGINES"))

# Engine name -> (spec, engine class), for the registry (engine.builtin registers each).
DIFFUSERS_SPECS: dict[str, tuple[EngineSpec, type]] = {
    cls.spec.name: (cls.spec, cls) for family in FAMILIES for cls in family.ENGINES}

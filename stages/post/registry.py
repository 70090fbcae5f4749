"""The post-stage registry: every stage registers itself here with one signature and declares what
the chain needs to know about it without running it.

A stage is a module anywhere under stages/post/ that calls `register(name, Params, run, ...)` at
import time. `load_builtin_stages` imports every module of the package once (stages.post.chain
does so when it is imported), so a new stage needs no list edited anywhere: one module, plus a
conf/post/ preset if users should be able to name it.

What a stage declares (`StageDef`):
- `params`: a pydantic model (extra="forbid", frozen) checking the stage's YAML keys; a ClassVar
  `files` on it names the parameters that are files, `{param: (what, suffixes)}`, so the chain
  resolves, confines and digests them (the digest, not the path, enters content keys);
- `run(stream, fps, params, digests) -> stream`: the only signature; PostFrames in and out (their
  `cut` flags must travel through), lazy, holding a bounded window of frames;
- `frames_out`, `fps_out`, `size_out`: what comes out for what goes in, so plans, manifests and
  the output writer know it before anything runs (defaults: unchanged);
- `load(params, digests)`: preloads the stage's model, so a bad weights file is reported before
  any frame is processed (None: nothing to load);
- `check_file(param, path, digest)`: parses a file parameter at validation time (a LUT), raising
  ValueError, so a bad file stops validation rather than the render;
- `temporal` (reads neighbouring frames: belongs after the cut marker), `marks_cuts` (finds scene
  cuts), `smooths` (averages noise over time), `retimes` (synthesises frames in time): the chain's
  ordering advice (chain_warnings) is derived from these, never from stage names.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

from pydantic import BaseModel

from stages.post.stream import PostFrame

# (stream, input fps, params, file digests by parameter) -> stream
RunFn = Callable[[Iterator[PostFrame], float, Any, Mapping[str, str]], Iterator[PostFrame]]
# (params, file digests by parameter) -> None; raises stages.post.weights.ModelFileError
LoadFn = Callable[[Any, Mapping[str, str]], None]
# (parameter, resolved path, sha256) -> None; raises ValueError with what is wrong in the file
CheckFileFn = Callable[[str, str, str], None]


def same_count(n: int, fps: float | None, params: Any) -> int:
    return n


def same_fps(fps: float, params: Any) -> float:
    return fps


def same_size(width: int, height: int, params: Any) -> tuple[int, int]:
    return width, height


@dataclass(frozen=True)
class StageDef:
    params: type[BaseModel]
    run: RunFn
    # Output frame count for an input count and fps (None when the caller has none: a stage
    # whose count depends on the fps raises ValueError then).
    frames_out: Callable[[int, float | None, Any], int] = same_count
    fps_out: Callable[[float, Any], float] = same_fps
    size_out: Callable[[int, int, Any], tuple[int, int]] = same_size
    # Reads neighbouring frames: needs the cut list, belongs after the cut-marking stage.
    temporal: bool = False
    load: LoadFn | None = None
    check_file: CheckFileFn | None = None
    marks_cuts: bool = False
    smooths: bool = False
    retimes: bool = False

    @property
    def doc(self) -> str:
        """What the stage does: its parameter model's docstring ("" when it has none of its
        own and would show pydantic's), for --help and the JSON Schema."""
        own = self.params.__doc__
        return (own or "").strip() if own != BaseModel.__doc__ else ""


# Every registered stage by the name chains use (`{stage: NAME, ...}`).
STAGES: dict[str, StageDef] = {}


def register(name: str, params: type[BaseModel], run: RunFn, **declarations: Any) -> StageDef:
    """Add stage `name`; `declarations` are StageDef's other fields. A name registered twice is
    an error: two modules claiming one name would otherwise depend on import order."""
    if name in STAGES:
        raise ValueError(f"post stage {name!r} is already registered")
    stage = StageDef(params, run, **declarations)
    STAGES[name] = stage
    return stage


def unregister(name: str) -> None:
    """Remove stage `name` (tests that register their own stages clean up with it)."""
    del STAGES[name]


_loaded = False


def load_builtin_stages() -> None:
    """Import every module under stages/post/ once, so each built-in stage registers itself.
    Stage modules import torch and other heavy libraries only when a stage runs, so this costs
    little."""
    global _loaded
    if _loaded:
        return
    # Set first: a module imported below may import stages.post.chain, which calls this again.
    _loaded = True
    import stages.post as package

    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)

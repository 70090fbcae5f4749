"""`torchrun --nproc-per-node N -m flows.parallel_launch MODULE [ARGS ...]`: run MODULE (as
`python -m MODULE ARGS` would) on rank 0 while ranks 1..N-1 follow its context-parallel engine
calls (engine.parallel). Without torchrun's environment it simply runs MODULE.

`python -m flows.render` does this by itself; this is for other entry points, e.g. a Prefect
process worker whose flow runs should each use N GPUs (the work pool's `command` job variable):

    torchrun --nproc-per-node 4 -m flows.parallel_launch prefect.engine
"""

from __future__ import annotations

import runpy
import sys

from engine.diffusers.parallel.session import launched

USAGE = "usage: python -m flows.parallel_launch MODULE [ARGS ...]"


def run_module(module: str, args: list[str]) -> int:
    """`python -m module args` in this process; its exit status."""
    saved = sys.argv
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    finally:
        sys.argv = saved
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr)
        return 0 if argv else 2
    module, args = argv[0], argv[1:]
    return launched(lambda: run_module(module, args))


if __name__ == "__main__":
    sys.exit(main())

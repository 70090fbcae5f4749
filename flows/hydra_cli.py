"""Exit statuses for the Hydra entry points (render, series, enhance).

Hydra exits with status 1 on a bad override before the decorated main runs; for our users that
is a configuration error (2), like any other. The main functions append their own status to a
list, since a Hydra main cannot return one.
"""

from __future__ import annotations

import sys
from typing import Callable

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def hydra_exit_code(main: Callable[[], None], codes: list[int], hint: str) -> int:
    """Run a @hydra.main function; the worst status it recorded, or 2 (with `hint`) when Hydra
    refused the command line."""
    try:
        main()
    except SystemExit as exc:
        if not codes and exc.code not in (0, None):
            print(hint, file=sys.stderr)
            return EXIT_INVALID
        if exc.code not in (0, None):
            return int(exc.code) if isinstance(exc.code, int) else EXIT_FAILED
    return max(codes, default=EXIT_OK)

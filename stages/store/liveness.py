"""Whether a process is alive: the one answer the lock files and temp-file cleanup share."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists in this PID namespace. A process owned by someone else
    (PermissionError) counts as alive; so does this process itself."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError and the like: it exists, owned by someone else
        return True
    return True

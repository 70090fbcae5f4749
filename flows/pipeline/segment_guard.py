"""What a segment render holds while it runs: the segment's lock, then its GPU.

- The lock (stages/store/lock.py, in the shared cache folder) makes sure two workers, on one machine or
  several, never render the same segment: the second waits, then finds it in the cache.
- The GPU: workers run one per GPU, started with `CUDA_VISIBLE_DEVICES=N`. Every generation on
  that GPU takes the Prefect global concurrency limit `gpu-<host>-<N>` (limit 1, created on first
  use), so two segments never share a GPU, even when independent shots of one episode or two
  episodes run at once in the same worker. `REELFORGE_GPU_LIMIT=<name>` names the limit
  explicitly (e.g. two machines sharing one name space); `REELFORGE_GPU_LIMIT=` (empty) turns it
  off. Without `CUDA_VISIBLE_DEVICES` (a CPU machine, the preview engine) no limit is taken.

Cache hits take neither.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from typing import Iterator

from stages.store.cache import CacheStore

log = logging.getLogger(__name__)

GPU_LIMIT_ENV = "REELFORGE_GPU_LIMIT"
_ensured: set[str] = set()
_ensure_lock = threading.Lock()
# Segments of one flow run queue for their GPU here first, in-process: a thread blocked on a
# lock takes over the moment it is released, whereas a Prefect limit answers a busy slot with
# "retry after" up to the average slot occupancy (capped at 30 s by the server), which would
# leave the GPU idle between segments. The Prefect limit then guards across processes.
_local_gpu_locks: dict[str, threading.Lock] = {}


def gpu_limit_name(environ: dict[str, str] | None = None) -> str | None:
    """The Prefect global concurrency limit guarding this worker's GPU, or None."""
    env = os.environ if environ is None else environ
    if GPU_LIMIT_ENV in env:
        return env[GPU_LIMIT_ENV].strip() or None
    devices = env.get("CUDA_VISIBLE_DEVICES", "").strip()
    if not devices:
        return None
    host = "".join(c if c.isalnum() or c == "-" else "-" for c in socket.gethostname().lower())
    return f"gpu-{host}-{devices.replace(',', '_')}"


def ensure_gpu_limit(name: str) -> None:
    """Create the limit (1 slot) if it does not exist yet; once per process."""
    with _ensure_lock:
        if name in _ensured:
            return
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
        from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

        with get_client(sync_client=True) as client:
            try:
                client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                try:
                    client.create_global_concurrency_limit(
                        GlobalConcurrencyLimitCreate(name=name, limit=1))
                    log.info("created global concurrency limit %s (1 slot)", name)
                except ObjectAlreadyExists:
                    pass
        _ensured.add(name)


@contextlib.contextmanager
def gpu_slot() -> Iterator[str | None]:
    """Hold this worker's GPU (its global concurrency limit) for the block; yields the name."""
    name = gpu_limit_name()
    if name is None:
        yield None
        return
    from prefect.concurrency.sync import concurrency

    ensure_gpu_limit(name)
    with _ensure_lock:
        local = _local_gpu_locks.setdefault(name, threading.Lock())
    # The slot is leased: a crashed worker's slot frees itself when the lease (300 s) runs out.
    # A failed lease renewal (the API briefly unreachable) must not kill minutes of GPU work.
    with local, concurrency(name, occupy=1, strict=True, raise_on_lease_renewal_failure=False):
        yield name


@contextlib.contextmanager
def segment_guard(store: CacheStore, key: str) -> Iterator[None]:
    """Hold the segment's lock and this worker's GPU while the block renders segment `key`."""
    if store.has("segment", key):
        yield  # a cache hit needs neither
        return
    with store.lock("segment", key):
        if store.has("segment", key):
            yield  # another worker rendered it while we waited: the block reads the cache
            return
        with gpu_slot():
            yield

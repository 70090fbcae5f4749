"""The model pool: pipelines load once per worker process and stay resident.

A render constructs engines cheaply; the first generation asks the pool for its pipeline, which
loads it (once, even when several threads ask at the same time) and keeps it across segments,
shots and renders in the same process (a series, watch mode). When a load would exceed the memory
budget, the least recently used pipelines that no generation is using are unloaded first.

Every entry carries a lock, because a diffusers pipeline is not re-entrant (its scheduler holds
per-call state): generations on one pipeline run one at a time, whatever the task runner does.
Entries also hold what is worth keeping per pipeline: text embeddings per distinct prompt and
the LoRAs already attached.
"""

from __future__ import annotations

import gc
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable


@dataclass
class PoolEntry:
    key: Hashable
    value: Any
    size: int  # bytes the entry is believed to hold
    lock: threading.RLock = field(default_factory=threading.RLock)
    users: int = 0
    loaded_s: float = 0.0
    # Per-pipeline memo: text embeddings by (prompt, negative, ...), attached LoRAs by file.
    embeddings: "OrderedDict[Hashable, Any]" = field(default_factory=OrderedDict)
    adapters: dict[str, str] = field(default_factory=dict)
    # Pipelines of other classes built from this one with from_pipe (shared weights).
    variants: dict[str, Any] = field(default_factory=dict)
    # Degrade steps already applied to this pipeline (out-of-memory ladder).
    degraded: list[str] = field(default_factory=list)

    MAX_EMBEDDINGS = 64

    def embedding(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The memoised result of `compute` for `key` (LRU of MAX_EMBEDDINGS)."""
        if key in self.embeddings:
            self.embeddings.move_to_end(key)
            return self.embeddings[key]
        value = compute()
        self.embeddings[key] = value
        while len(self.embeddings) > self.MAX_EMBEDDINGS:
            self.embeddings.popitem(last=False)
        return value


class ModelPool:
    """LRU of loaded pipelines under a memory budget (bytes; None: no limit)."""

    def __init__(self, budget: int | None = None,
                 on_unload: Callable[[Any], None] | None = None) -> None:
        self.budget = budget
        self._entries: "OrderedDict[Hashable, PoolEntry]" = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[Hashable, threading.Lock] = {}
        self._on_unload = on_unload
        self.loads: dict[Hashable, int] = {}   # how many times each key was loaded
        self.unloads: list[Hashable] = []

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def keys(self) -> list[Hashable]:
        return list(self._entries)

    @property
    def used(self) -> int:
        return sum(e.size for e in self._entries.values())

    def acquire(self, key: Hashable, load: Callable[[], Any], estimate: int = 0,
                budget: int | None = None) -> PoolEntry:
        """The entry for `key`, loading it with `load()` the first time. Call `release` after."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                entry.users += 1
                return entry
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:  # one loader per key; others wait and then find the entry
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None:
                    entry.users += 1
                    return entry
                self._make_room(estimate, budget if budget is not None else self.budget)
            started = time.perf_counter()
            value = load()
            entry = PoolEntry(key=key, value=value, size=estimate,
                              loaded_s=time.perf_counter() - started)
            with self._lock:
                self._entries[key] = entry
                self.loads[key] = self.loads.get(key, 0) + 1
                entry.users += 1
                self._loading.pop(key, None)
            return entry

    def release(self, entry: PoolEntry) -> None:
        with self._lock:
            entry.users = max(0, entry.users - 1)

    def _make_room(self, incoming: int, budget: int | None) -> None:
        if budget is None:
            return
        for key in list(self._entries):
            if self.used + incoming <= budget:
                break
            entry = self._entries[key]
            if entry.users == 0:
                self._drop(key)

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key)
        self.unloads.append(key)
        value, entry.value = entry.value, None
        entry.embeddings.clear()
        entry.variants.clear()
        if self._on_unload is not None:
            self._on_unload(value)
        del value
        gc.collect()

    def unload(self, key: Hashable) -> None:
        with self._lock:
            if key in self._entries:
                self._drop(key)

    def clear(self) -> None:
        with self._lock:
            for key in list(self._entries):
                self._drop(key)


def _free_accelerator_memory(_value: Any) -> None:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# The process-wide pool the diffusers engines share.
POOL = ModelPool(on_unload=_free_accelerator_memory)

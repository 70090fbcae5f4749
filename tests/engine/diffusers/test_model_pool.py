"""The model pool: one load per key (even under concurrent requests), LRU unloading under a
memory budget that never drops a pipeline in use."""

from __future__ import annotations

import threading
import time

from engine.diffusers.model_pool import ModelPool


def test_loads_once_even_when_threads_race():
    pool = ModelPool()
    loads = []

    def load():
        loads.append(1)
        time.sleep(0.05)
        return object()

    got = []
    threads = [threading.Thread(target=lambda: got.append(pool.acquire("m", load)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1 and pool.loads == {"m": 1}
    assert len({id(e.value) for e in got}) == 1 and got[0].users == 4


def test_lru_unloads_idle_pipelines_under_the_budget():
    unloaded = []
    pool = ModelPool(budget=100, on_unload=unloaded.append)
    a = pool.acquire("a", lambda: "A", estimate=60)
    pool.release(a)
    b = pool.acquire("b", lambda: "B", estimate=30)
    pool.release(b)
    pool.release(pool.acquire("a", lambda: "A2", estimate=60))  # a is now most recent
    c = pool.acquire("c", lambda: "C", estimate=40)  # needs room: b (least recent) goes first
    assert unloaded == ["B"] and pool.keys() == ["a", "c"]
    # An entry in use is never unloaded, even when the budget is exceeded.
    d = pool.acquire("d", lambda: "D", estimate=80)
    assert "c" in pool and unloaded == ["B", "A"]
    pool.release(c)
    pool.release(d)
    assert pool.loads == {"a": 1, "b": 1, "c": 1, "d": 1}


def test_embeddings_memo_is_bounded():
    pool = ModelPool()
    entry = pool.acquire("m", lambda: object())
    computed = []
    for i in range(entry.MAX_EMBEDDINGS + 5):
        entry.embedding(i, lambda i=i: computed.append(i) or i)
    entry.embedding(entry.MAX_EMBEDDINGS + 4, lambda: computed.append("again"))
    assert "again" not in computed and len(entry.embeddings) == entry.MAX_EMBEDDINGS

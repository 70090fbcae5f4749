"""Rank 0's side of a parallel launch: each engine call numbered in the process group's
key-value store (the engine class and options, so a follower builds the same engine, and the
request), a heartbeat, the answers of the followers after a failed call, and the end-of-work
sentinel (engine.diffusers.parallel)."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import pickle
import threading
import time
from typing import Any, Iterator, Mapping

from .config import ParallelConfig, ParallelError

log = logging.getLogger("engine.diffusers.parallel")


# -- rank 0: send each call ----------------------------------------------------------------------


def options_mapping(options: Any) -> dict[str, Any]:
    """Constructor options that rebuild an engine's options (DiffusersOptions or a mapping)."""
    if isinstance(options, Mapping):
        return dict(options)
    values = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)
              if f.name != "extra"}
    values.update(getattr(options, "extra", None) or {})
    return values


def engine_spec(engine: Any) -> tuple[str, str, dict[str, Any]]:
    cls = type(engine)
    return (cls.__module__, cls.__qualname__, options_mapping(engine.options))


def engine_from_spec(spec: tuple[str, str, dict[str, Any]]):
    """A follower's engine for `spec` (the class and options rank 0 uses); one per spec."""
    import importlib

    module, qualname, options = spec
    cls: Any = importlib.import_module(module)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    return cls(**options)


class Leader:
    """Rank 0's side: numbered messages in the store, a heartbeat, the end-of-work sentinel."""

    def __init__(self, store, world_size: int, timeout_s: float,
                 heartbeat_s: float = 2.0, answer_s: float = 60.0) -> None:
        self.store = store
        self.followers = list(range(1, world_size))
        self.timeout_s = timeout_s
        # After a failed call, how long followers have to say how their call ended. Ranks that
        # failed the same way (before any collective) answer at once; one stuck in a
        # collective would answer only at the timeout, so rank 0 stops waiting and fails
        # the launch instead (torchrun then ends the stuck ranks with it).
        self.answer_s = min(answer_s, timeout_s)
        self.seq = 0
        self.calls = 0
        self.broken: str | None = None
        self._unread: list[int] = []
        self._loads: list[int] = []  # load messages whose outcome no call has checked yet
        self._finished = 1  # statuses below this are deleted
        self._local = threading.local()
        self._calls = threading.Lock()  # one call at a time: the followers make them in order
        self._sending = threading.Lock()
        self._stopped = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, args=(heartbeat_s,),
                                           name="reelforge-parallel-heartbeat", daemon=True)
        self._heartbeat.start()

    def _beat(self, every: float) -> None:
        while not self._stopped.is_set():
            with contextlib.suppress(Exception):  # a closed store: the followers time out
                self.store.add("alive", 1)
            self._stopped.wait(every)

    def send(self, message: dict[str, Any]) -> int:
        with self._sending:
            self._forget()
            self.seq += 1
            self.store.set(f"msg/{self.seq}", pickle.dumps({**message, "seq": self.seq}))
            if message.get("op") == "generate":
                self._unread.append(self.seq)
            elif message.get("op") == "load":
                self._loads.append(self.seq)
            return self.seq

    def _forget(self) -> None:
        """Drop the generate messages (they hold the requests' images) every follower has
        read (`read/<rank>`: the last message it took), and the statuses of the messages
        every follower has finished (those before the last it read). Load and stop messages
        are a few hundred bytes and stay."""
        with contextlib.suppress(Exception):
            read = min(int(self.store.get(f"read/{r}")) if self.store.check([f"read/{r}"])
                       else 0 for r in self.followers)
            while self._unread and self._unread[0] <= read:
                self.store.delete_key(f"msg/{self._unread.pop(0)}")
            for seq in range(self._finished, read):
                for rank in self.followers:
                    self.store.delete_key(f"status/{seq}/{rank}")
            self._finished = max(self._finished, read)

    def _check_loads(self) -> None:
        """Before the first call after a load: every follower loaded too (the call's first
        collective would wait for them anyway), or the launch cannot work: say why now
        rather than at the collective's timeout."""
        loads, self._loads = self._loads, []
        for seq in loads:
            statuses = self._statuses(seq, self.timeout_s)
            bad = [f"rank {r}: {statuses.get(r, 'no answer')}" for r in self.followers
                   if statuses.get(r) != "ok"]
            if bad:
                self.broken = "; ".join(bad)
                raise ParallelError(f"the other ranks could not load the pipeline: "
                                    f"{self.broken}")

    def _check(self) -> None:
        if self.broken:
            raise ParallelError(f"an earlier parallel generation failed and the ranks may be "
                                f"out of step ({self.broken}); restart the launch "
                                f"(finished segments are cached)")

    def prepare_load(self, engine: Any, config: ParallelConfig) -> None:
        """Before rank 0 loads `engine`'s weights: the followers load it too (unless this is
        inside a call, which they make anyway). Not under the call lock: a call may be
        waiting for this very load (the model pool's per-model gate)."""
        self._check()
        if not getattr(self._local, "in_call", False):
            self.send({"op": "load", "spec": engine_spec(engine)})

    @contextlib.contextmanager
    def call(self, engine: Any, request: Any) -> Iterator[None]:
        """Send `request` for `engine`, then run rank 0's own call inside the block. A failed
        call is checked against the followers: the ranks are still in step when every
        follower failed the same way (before any collective) or finished; else the launch is
        marked broken and every later call fails at once."""
        with self._calls:
            self._check()
            self._check_loads()
            seq = self.send({"op": "generate", "spec": engine_spec(engine), "request": request})
            self.calls += 1
            self._local.in_call = True
            try:
                yield
            except BaseException as exc:
                if not isinstance(exc, Exception):  # Ctrl-C: do not wait for anything
                    self.broken = f"interrupted: {type(exc).__name__}"
                    raise
                statuses = self._statuses(seq, self.answer_s)
                stuck = [r for r in self.followers if not statuses.get(r)]
                lost = [r for r, s in statuses.items() if s.startswith("broken")]
                if stuck or lost:
                    self.broken = (f"rank 0: {type(exc).__name__}: {exc}; "
                                   + "; ".join([f"rank {r}: no answer" for r in stuck]
                                               + [f"rank {r}: {statuses[r]}" for r in lost]))
                    raise ParallelError(f"parallel generation failed: {self.broken}") from exc
                raise
            finally:
                self._local.in_call = False

    def _statuses(self, seq: int, wait_s: float) -> dict[int, str]:
        deadline = time.monotonic() + wait_s
        found: dict[int, str] = {}
        while True:
            for rank in self.followers:
                key = f"status/{seq}/{rank}"
                if rank not in found and self.store.check([key]):
                    found[rank] = self.store.get(key).decode("utf-8", "replace")
            if len(found) == len(self.followers) or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def stop(self, wait_s: float | None = None) -> bool:
        """The sentinel: followers finish their last call and exit. Waits (up to the timeout,
        5 s after an interrupted or failed call) for each to say goodbye; True when all did."""
        if self._stopped.is_set():
            return True
        with contextlib.suppress(Exception):
            self.send({"op": "stop"})
        wait = wait_s if wait_s is not None else (5.0 if self.broken else self.timeout_s)
        deadline = time.monotonic() + wait
        pending = set(self.followers)
        while pending and time.monotonic() < deadline:
            try:
                pending = {r for r in pending if not self.store.check([f"bye/{r}"])}
            except Exception:  # noqa: BLE001 - the store is gone: nobody left to wait for
                break
            if pending:
                time.sleep(0.05)
        self._forget()
        self.close()
        if pending:
            log.warning("parallel: ranks %s did not confirm the stop", sorted(pending))
        return not pending

    def close(self) -> None:
        self._stopped.set()

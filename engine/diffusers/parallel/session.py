"""One generation over several GPUs: diffusers' context parallelism, and the processes around it.

`engine.options.parallel: {ulysses: N, ring: M}` splits the denoiser's token sequence over
N x M processes, one GPU each, started by torchrun (or any launcher that sets RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT):

    torchrun --standalone --nproc-per-node 4 -m flows.render storyboard=ep01 engine=wan21_t2v \
        engine.model=/models/Wan2.1-T2V-14B engine.options.parallel.ulysses=4

Ulysses exchanges attention heads with an all-to-all (the degree must divide the model's head
count, and the token count must divide by it unless `anything: true`); ring passes key/value
blocks around (any head count; needs an attention kernel that returns the log-sum-exp: flash,
cuDNN, not PyTorch's plain SDPA). Both are exact up to floating-point summation order, so a
segment rendered over 4 GPUs has the same content key as on one. CFG parallelism (the
conditional and unconditional passes on different GPUs) is not in diffusers 0.42.1
(`_modeling_parallel.py` lists CFG / data parallelism as not yet done): `cfg` is accepted
only as 1.

Every rank must make the same pipeline call with the same inputs at the same time. Rank 0 runs
the render (flow, cache, files); the other ranks run `follow()`: rank 0 sends each request
through the process group's key-value store right before its own call, the followers make the
same engine call and discard the output, and a `stop` message ends them when rank 0's work ends
(also on failure or Ctrl-C: `launched()` sends it in a `finally`). Only rank 0 writes anything.
Nothing waits forever: collectives and the store have the process group's timeout
(REELFORGE_PARALLEL_TIMEOUT_S, default 1800 s), an idle follower gives up when rank 0's
heartbeat stops for that long, and when rank 0's call fails it gives the followers a minute
to report theirs: all failed the same way (before any collective) or finished, and the ranks
are still in step; otherwise the launch is marked broken and every later call fails at once
(ParallelError: restart; finished segments are cached). When rank 0 then exits with an error,
torchrun ends the other ranks; else they end at the collective timeout.

Load order (engine.diffusers.accel.apply_load_options): placement, quantization, the regional
compile of the repeated blocks, then the attention backend and `enable_parallelism`, so the
split/gather hooks wrap the compiled blocks from outside. Compiling after `enable_parallelism` with
fullgraph fails: dynamo cannot trace the split hook on `blocks.0` ("Unsupported hasattr call",
measured on the CPU with gloo). diffusers itself requires the attention backend to be set before
`enable_parallelism`.

The device mesh is built once per (ring, ulysses) shape on every rank at the same point (rank
0 before it loads weights, a follower when it first sees that shape in a message) and handed to
diffusers, so loading a pipeline involves no collective and ranks may load at different times.

On the CPU (gloo) Ulysses runs, for tests: diffusers 0.42.1 picks the device in
`ModelMixin._resolve_parallel_config` as `rank % torch.accelerator.device_count()`, a
ZeroDivisionError without an accelerator, so on the CPU the model's resolver is replaced by one
that does the same setup on the CPU. Ring cannot run on the CPU: the only context-parallel
backend there is PyTorch SDPA ("native"), which returns no log-sum-exp ("Native attention does
not support return_lse=True").
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import pickle
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

from ...base import EngineConfigError
from . import model as parallel_model
from .config import ParallelConfig, ParallelError, parse
from .leader import Leader, engine_from_spec
from .model import choose_backend

# The interface of engine.diffusers.parallel (parse: the option's reader, with the engine
# options; choose_backend: the attention kernel a context-parallel model can use).
__all__ = [
    "DEFAULT_TIMEOUT_S", "TIMEOUT_ENV", "Launch", "Leader", "ParallelConfig", "ParallelError",
    "Session", "apply_parallel", "before_load", "choose_backend", "close", "follow", "launched",
    "launch_from_env", "lead", "leading_call", "parse", "rank_device", "session", "start",
    "timeout_from_env", "torchrun_hint",
]

log = logging.getLogger(__name__)

TIMEOUT_ENV = "REELFORGE_PARALLEL_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 1800.0


# -- processes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Launch:
    """This process's place in a torchrun-style launch (environment variables)."""

    rank: int
    world_size: int
    local_rank: int


def launch_from_env(environ: Mapping[str, str] | None = None) -> Launch | None:
    """RANK / WORLD_SIZE / LOCAL_RANK as torchrun sets them; None for a single process."""
    env = os.environ if environ is None else environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise ParallelError(f"RANK={env.get('RANK')!r}, WORLD_SIZE={env.get('WORLD_SIZE')!r}, "
                            f"LOCAL_RANK={env.get('LOCAL_RANK')!r}: expected whole numbers "
                            f"(torchrun sets them)") from None
    if world <= 1:
        return None
    if not 0 <= rank < world or local < 0:
        raise ParallelError(f"RANK={rank} is not within WORLD_SIZE={world} (LOCAL_RANK={local})")
    return Launch(rank, world, local)


def timeout_from_env(environ: Mapping[str, str] | None = None) -> float:
    env = os.environ if environ is None else environ
    raw = env.get(TIMEOUT_ENV)
    if raw in (None, ""):
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ParallelError(f"{TIMEOUT_ENV}={raw!r}: expected a positive number of seconds")
    return value


def torchrun_hint(size: int) -> str:
    return (f"start {size} processes, one per GPU: torchrun --nproc-per-node {size} "
            f"-m flows.render storyboard=... (README: One shot across several GPUs)")


def rank_device(device: str, config: ParallelConfig | None,
                environ: Mapping[str, str] | None = None) -> str:
    """The device of this rank: cuda -> cuda:LOCAL_RANK under a launch; unchanged otherwise.
    A launch whose size differs from the degrees' product is a config error."""
    if config is None:
        return device
    launch = launch_from_env(environ)
    if launch is None:
        return device  # not launched: load() says how to start it
    if launch.world_size != config.size:
        raise EngineConfigError(
            f"engine.options.parallel={{{config.describe()}}} needs {config.size} processes, "
            f"but {launch.world_size} were started (WORLD_SIZE); make the product of the "
            f"degrees equal --nproc-per-node")
    if device == "cuda":
        return f"cuda:{launch.local_rank}"
    return device


@dataclass
class Session:
    """The process group of a launch and its key-value store (rank 0 leads, others follow)."""

    launch: Launch
    store: Any
    timeout_s: float
    device_type: str
    leader: "Leader | None" = None
    meshes: dict = dataclasses.field(default_factory=dict)
    _mesh_lock: Any = dataclasses.field(default_factory=threading.Lock, repr=False)

    def mesh(self, config: ParallelConfig):
        """The (ring, ulysses) device mesh for `config`, built on first use. Every rank builds
        it at the same logical point (a collective); diffusers then only slices it."""
        with self._mesh_lock:  # one collective at a time from this process
            return self._mesh(config)

    def _mesh(self, config: ParallelConfig):
        if config.shape not in self.meshes:
            from torch.distributed.device_mesh import init_device_mesh

            mesh = init_device_mesh(self.device_type, config.shape,
                                    mesh_dim_names=("ring", "ulysses"))
            mesh["ring", "ulysses"]._flatten()  # diffusers' setup flattens; do it here, once
            self.meshes[config.shape] = mesh
        return self.meshes[config.shape]


_SESSION: Session | None = None


def session() -> Session | None:
    return _SESSION


def start(launch: Launch, timeout_s: float | None = None) -> Session:
    """Join the process group (gloo on the CPU; NCCL for tensors plus gloo for CPU-side
    collectives on GPUs), with a timeout on every collective and store wait."""
    global _SESSION
    import datetime

    import torch
    import torch.distributed as dist
    from torch.distributed import distributed_c10d

    timeout_s = timeout_from_env() if timeout_s is None else timeout_s
    cuda = torch.cuda.is_available()
    if cuda:
        if launch.local_rank >= torch.cuda.device_count():
            raise ParallelError(f"LOCAL_RANK={launch.local_rank} but this machine shows "
                                f"{torch.cuda.device_count()} GPUs; start at most that many "
                                f"processes per node")
        torch.cuda.set_device(launch.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="cpu:gloo,cuda:nccl" if cuda else "gloo",
                                timeout=datetime.timedelta(seconds=timeout_s))
    store = dist.PrefixStore("reelforge/", distributed_c10d._get_default_store())
    _SESSION = Session(launch, store, timeout_s, "cuda" if cuda else "cpu")
    log.info("parallel: rank %d of %d joined (%s)", launch.rank, launch.world_size,
             "NCCL" if cuda else "gloo")
    return _SESSION


def close() -> None:
    global _SESSION
    sess, _SESSION = _SESSION, None
    if sess is None:
        return
    if sess.leader is not None:
        sess.leader.close()
    import torch.distributed as dist

    if dist.is_initialized() and not (sess.leader is not None and sess.leader.broken):
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


def launched(main: Callable[[], int], environ: Mapping[str, str] | None = None) -> int:
    """Run `main` once per launch: directly in a single process; under torchrun, on rank 0
    while the other ranks follow it (`follow`) until it returns, fails or is interrupted."""
    launch = launch_from_env(environ)
    if launch is None:
        return main()
    sess = start(launch)
    try:
        if launch.rank != 0:
            if not log.handlers:  # a follower's only output: what it followed, and why it ended
                handler = logging.StreamHandler()
                handler.setFormatter(logging.Formatter(f"[rank {launch.rank}] %(message)s"))
                log.addHandler(handler)
                log.setLevel(logging.INFO)
            return follow(sess.store, launch.rank, launch.world_size, sess.timeout_s)
        leader = lead(sess)
        try:
            status = main()
            if status == 0 and leader.calls == 0:
                log.warning("parallel: %d processes were started, but nothing was generated "
                            "with engine.options.parallel (all cached, or no engine sets it)",
                            launch.world_size)
            return status
        finally:
            leader.stop()
    finally:
        close()


def lead(sess: Session) -> "Leader":
    sess.leader = Leader(sess.store, sess.launch.world_size, sess.timeout_s)
    return sess.leader


@contextlib.contextmanager
def leading_call(engine: Any, request: Any) -> Iterator[None]:
    """Around rank 0's engine call: the followers make the same call (no-op elsewhere)."""
    sess = _SESSION
    config = getattr(getattr(engine, "options", None), "parallel", None)
    if config is None or sess is None or sess.leader is None:
        yield
        return
    with sess.leader.call(engine, request):
        yield


def _require_session(config: ParallelConfig) -> Session:
    sess = _SESSION
    if sess is None:
        raise EngineConfigError(f"engine.options.parallel={{{config.describe()}}}: this "
                                f"process was not started for it; {torchrun_hint(config.size)}")
    if sess.launch.world_size != config.size:
        raise EngineConfigError(
            f"engine.options.parallel={{{config.describe()}}} needs {config.size} processes, "
            f"{sess.launch.world_size} were started; make the product of the degrees equal "
            f"--nproc-per-node")
    return sess


def before_load(engine: Any, config: ParallelConfig | None) -> None:
    """Called by an engine right before it loads weights (see Leader.prepare_load)."""
    if config is None:
        return
    sess = _require_session(config)
    if sess.leader is not None:
        sess.leader.prepare_load(engine, config)
    sess.mesh(config)


# -- ranks > 0: follow ---------------------------------------------------------------------------


def _is_distributed_failure(exc: BaseException) -> bool:
    import torch.distributed as dist

    if isinstance(exc, dist.DistError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        w in text for w in ("timed out", "timeout", "connection", "nccl", "gloo"))


def follow(store, rank: int, world_size: int, timeout_s: float,
           build: Callable[[tuple], Any] = engine_from_spec,
           mesh: Callable[[ParallelConfig], Any] | None = None, poll_s: float = 0.02) -> int:
    """A follower's loop: make every call rank 0 announces, discard the output, exit on the
    sentinel. Returns the exit status: 0 stopped by rank 0; 3 rank 0 went silent (no message
    and no heartbeat for `timeout_s`); 4 a collective failed (the ranks are out of step)."""
    engines: dict[bytes, Any] = {}
    seq, calls = 0, 0
    beat, beat_seen = None, time.monotonic()

    def ensure_mesh(spec) -> None:
        config = spec[2].get("parallel") if isinstance(spec[2], Mapping) else None
        config = parse(config, spec[1]) if not isinstance(config, ParallelConfig) else config
        if config is not None:
            (mesh or _session_mesh)(config)

    def engine_for(spec):
        key = pickle.dumps(spec)
        if key not in engines:
            engines[key] = build(spec)
        return engines[key]

    while True:
        key = f"msg/{seq + 1}"
        try:
            ready = store.check([key])
            if not ready:
                now = time.monotonic()
                alive = int(store.add("alive", 0))
                if alive != beat:
                    beat, beat_seen = alive, now
                elif now - beat_seen > timeout_s:
                    log.error("parallel rank %d: nothing from rank 0 for %.0f s; giving up",
                              rank, timeout_s)
                    return 3
                time.sleep(poll_s)
                continue
            message = pickle.loads(store.get(key))
            store.set(f"read/{rank}", str(seq + 1))
        except Exception as exc:  # noqa: BLE001 - the store is gone with rank 0
            log.error("parallel rank %d: lost rank 0 (%s: %s)", rank, type(exc).__name__, exc)
            return 3
        seq += 1
        op = message.get("op")
        if op == "stop":
            with contextlib.suppress(Exception):
                store.set(f"bye/{rank}", str(calls))
            log.info("parallel rank %d: stopped by rank 0 after %d calls", rank, calls)
            return 0
        status = "ok"
        try:
            ensure_mesh(message["spec"])
            engine = engine_for(message["spec"])
            if op == "load":
                engine.load()
            elif op == "generate":
                calls += 1
                engine.generate_with_latents(message["request"])  # the output is rank 0's
            else:
                status = f"error: unknown message {op!r}"
        except Exception as exc:  # noqa: BLE001 - reported to rank 0, which decides
            broken = _is_distributed_failure(exc)
            status = f"{'broken' if broken else 'error'}: {type(exc).__name__}: {exc}"
            log.error("parallel rank %d: %s", rank, status)
            if broken:
                with contextlib.suppress(Exception):
                    store.set(f"status/{seq}/{rank}", status)
                return 4
        with contextlib.suppress(Exception):
            store.set(f"status/{seq}/{rank}", status)


def _session_mesh(config: ParallelConfig):
    if _SESSION is None:
        raise ParallelError("no process group")
    return _SESSION.mesh(config)


def apply_parallel(pipe, config: ParallelConfig, attention_backend: str | None,
                   device: str, report: Any) -> None:
    """Context parallelism on a loaded pipeline (parallel.model), with this process's session
    and its device mesh."""
    parallel_model.apply_parallel(pipe, config, attention_backend, device, report,
                                  _require_session(config))

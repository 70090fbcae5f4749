"""GPU smoke: every load-time option a GPU user turns on, through our engines, on a real CUDA device.

    python tests/perf/gpu_smoke.py --out $OUT/gpu_smoke.jsonl [--budget-s 150] [--only NAME ...]
    python tests/perf/gpu_smoke.py --device cpu --only eager compile+first_block   # plumbing

The tests run these paths on the CPU (fp32, PyTorch SDPA, Inductor's C++ backend). On a GPU the
same options meet bf16, Triton kernels, CUDA graphs, fp8 and offload hooks that move weights
between devices: the combinations that crashed before ever running on one (compile meeting a
step cache). Each case builds an engine exactly as the flow does (`get_engine(name, model=...,
pool=..., **options)`) on the tiny random-weight pipelines the tests use, renders one segment
and records: ok or the error, seconds (load + first call, then a second call), the engine's
runtime() (what compile, attention and offload resolved to), whether the frames are finite and
not constant, and the largest pixel difference to the eager bf16 render of the same request on
the same device (compile and caches must not change the picture beyond rounding).

Rows go to --out as JSON lines as each case ends (a kill loses nothing); a case that would start
after --budget-s is recorded as skipped. Needs diffusers and transformers; never prefect, hydra
or pydantic (engine/ imports none of them), so it runs on the bare GPU machine.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

START = time.perf_counter()
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# (case name, engine, tiny model, options beyond device, request keywords). Order: what users
# turn on most first, so a short budget still covers it.
CASES = [
    ("eager", "wan21_t2v", "t2v", {}, {}),
    ("compile", "wan21_t2v", "t2v", {"compile": True}, {}),
    ("compile+first_block", "wan21_t2v", "t2v",
     {"compile": True, "step_cache": "first_block", "step_cache_threshold": 0.01}, {}),
    ("compile+mag", "wan21_t2v", "t2v",
     {"compile": True, "step_cache": "mag", "step_cache_ratios": [1.0, 1.02, 0.98]},
     {"params": {"steps": 3}}),
    ("attention_auto", "wan21_t2v", "t2v", {"attention_backend": "auto"}, {}),
    ("offload_model", "wan21_t2v", "t2v", {"offload": "model"}, {}),
    ("offload_group+first_block+compile", "wan21_t2v", "t2v",
     {"offload": "group", "step_cache": "first_block", "compile": True}, {}),
    ("offload_sequential", "wan21_t2v", "t2v", {"offload": "sequential"}, {}),
    ("fp8_storage", "wan21_t2v", "t2v", {"quantize": "fp8_storage"}, {}),
    ("fp8", "wan21_t2v", "t2v", {"quantize": "fp8"}, {}),
    ("fp8+compile", "wan21_t2v", "t2v", {"quantize": "fp8", "compile": True}, {}),
    ("int8", "wan21_t2v", "t2v", {"quantize": "int8"}, {}),
    ("vae_tiling", "wan21_t2v", "t2v", {"vae_tiling": True}, {}),
    ("latent_preview+compile", "wan21_t2v", "t2v", {"compile": True}, {"preview": True}),
    ("wan22_i2v+compile+mag", "wan22_i2v_a14b", "i2v2",
     {"compile": True, "step_cache": "mag",
      "step_cache_ratios": [1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0]},
     {"start_image": True, "params": {"steps": 7, "cfg": 2.0}}),
    ("cogvideox+compile", "cogvideox", "cog", {"compile": True}, {"fps": 8}),
    ("ltx+compile", "ltx", "ltx", {"compile": True}, {}),
    ("sdxl_keyframe", "sdxl", "sdxl", {}, {"image": True}),
    ("flux_keyframe+compile", "flux", "flux", {"compile": True}, {"image": True}),
    # wan_animate with a performer's keypoints (pose.model): the skeleton and head-tracked face.
    ("wan_animate+pose", "wan_animate", "animate", {}, {"driving": True}),
    # The helper models on the GPU (pose for animate shots, depth and pose control): keypoints
    # and depth against the same call on the CPU.
    ("pose_on_device", "pose", "vitpose", {}, {}),
    ("depth_on_device", "depth", "depth", {}, {}),
    # Last: compiling SVD's UNet whole ran past 5 minutes on the H200 (2026-11-29).
    ("svd+compile", "svd", "svd", {"compile": True}, {"start_image": True}),
]
BUILDERS = {"t2v": "save_wan_t2v", "i2v2": "save_wan22_i2v", "cog": "save_cogvideox",
            "ltx": "save_ltx", "svd": "save_svd", "animate": "save_wan_animate"}
IMAGE_BUILDERS = {"sdxl": "save_sdxl", "flux": "save_flux"}


def build_model(key: str, root: Path, cache: dict) -> Path:
    if key not in cache:
        if key == "vitpose":
            from tests.helpers.pose_scenes import save_tiny_pose_model
            cache[key] = save_tiny_pose_model(root / key)
        elif key == "depth":
            from tests.helpers.depth_scenes import save_tiny_depth_model
            cache[key] = save_tiny_depth_model(root / key)
        elif key in IMAGE_BUILDERS:
            from tests.helpers import tiny_image_pipelines as helpers
            cache[key] = getattr(helpers, IMAGE_BUILDERS[key])(root / key)
        else:
            from tests.helpers import tiny_pipelines as helpers
            cache[key] = getattr(helpers, BUILDERS[key])(root / key)
    return cache[key]


def make_request(kw: dict):
    import numpy as np

    from tests.helpers import tiny_pipelines as tiny

    kw = dict(kw)
    if kw.pop("image", False):
        from engine.base import ImageRequest
        return ImageRequest(prompt="a lighthouse", width=64, height=64, seed=3,
                            params={"steps": 2})
    if kw.pop("start_image", False):
        kw["start_image"] = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    if kw.pop("driving", False):  # a performer video and its keypoints, 128x112
        from tests.helpers.pose_scenes import performer_frames
        frames, points = performer_frames(9)
        kw.update(width=128, height=112, driving_video=frames, driving_pose=points,
                  start_image=np.full((112, 128, 3), 90, np.uint8))
    return tiny.tiny_request(**kw)


def helper_model_row(name: str, model: Path, device: str) -> dict:
    """The pose or depth model on `device` against the CPU: seconds and the largest difference
    (keypoint pixels, or depth in 0..1)."""
    import numpy as np

    from tests.helpers.pose_scenes import performer_frames

    frames, _ = performer_frames(16)
    if name == "pose":
        from engine.pose.estimate import estimate_poses as estimate
    else:
        from engine.depth.estimate import estimate_depth as estimate
    t0 = time.perf_counter()
    there = estimate(frames, model, device=device)
    row = {"first_s": round(time.perf_counter() - t0, 2)}
    t0 = time.perf_counter()
    estimate(frames, model, device=device)
    row["second_s"] = round(time.perf_counter() - t0, 2)
    here = estimate(frames, model, device="cpu")
    row["shape"] = list(there.shape)
    row["max_diff_to_cpu"] = round(float(np.abs(there - here).max()), 4)
    return row


def render(engine, request, previews: list | None = None):
    from engine.base import ImageRequest
    if isinstance(request, ImageRequest):
        return engine.generate_image(request)
    progress = None
    if previews is not None:  # what the live console hands the engine (renders/NAME/preview.png)
        def progress(*_args, **_kw):
            return None
        progress.preview = lambda picture: previews.append(picture.copy())
    return engine.generate(request, progress)


def run_case(case, device: str, root: Path, models: dict, eager: dict) -> dict:
    import numpy as np
    import torch

    from engine.diffusers.model_pool import ModelPool
    from engine.registry import get_engine

    name, engine_name, model_key, options, req_kw = case
    row = {"case": name, "engine": engine_name, "options": options}
    model = build_model(model_key, root, models)
    if engine_name in ("pose", "depth"):
        return {**row, **helper_model_row(engine_name, model, device)}
    torch.manual_seed(0)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    engine = get_engine(engine_name, model=str(model), pool=ModelPool(), device=device, **options)
    previews = [] if req_kw.get("preview") else None
    request = make_request({k: v for k, v in req_kw.items() if k != "preview"})
    t0 = time.perf_counter()
    frames = render(engine, request, previews)
    row["first_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    again = render(engine, request)
    row["second_s"] = round(time.perf_counter() - t0, 2)
    row["runtime"] = {k: v for k, v in engine.runtime().items()
                      if isinstance(v, (str, int, float, bool, type(None)))}
    if previews is not None:
        row["previews"] = len(previews)
        row["previews_differ"] = bool(len(previews) > 1 and
                                      np.abs(previews[0].astype(int) - previews[-1].astype(int)).max() > 0)
    row["shape"] = list(frames.shape)
    row["dtype"] = str(frames.dtype)
    row["not_constant"] = bool(frames.std() > 0)
    row["repeatable_max_diff"] = int(np.abs(frames.astype(int) - again.astype(int)).max())
    base_key = (engine_name, json.dumps(req_kw, sort_keys=True))
    if not options:
        eager[base_key] = frames
    elif base_key in eager:
        row["max_diff_to_eager"] = int(np.abs(frames.astype(int) - eager[base_key].astype(int)).max())
    if device.startswith("cuda"):
        row["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    engine.close() if hasattr(engine, "close") else None
    return row


def environment(device: str) -> dict:
    import platform

    import torch
    env = {"case": "environment", "python": platform.python_version(), "torch": torch.__version__,
           "device": device}
    for name in ("diffusers", "transformers", "torchao", "triton"):
        try:
            env[name] = __import__(name).__version__
        except Exception as exc:  # noqa: BLE001 - recorded, not fatal
            env[name] = f"missing ({type(exc).__name__})"
    if device.startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name()
    return env


class CaseTimeout(Exception):
    """One case ran past --case-timeout (raised from SIGALRM in the main thread)."""


def _timeout(_signum, _frame):
    raise CaseTimeout


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(os.environ.get("OUT", "."), "gpu_smoke.jsonl"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--budget-s", type=float, default=150.0)
    parser.add_argument("--case-timeout", type=float, default=60.0,
                        help="seconds one case may take before it is recorded as timed out")
    parser.add_argument("--only", nargs="+", metavar="CASE", choices=[c[0] for c in CASES])
    args = parser.parse_args(argv)

    import torch
    signal.signal(signal.SIGALRM, _timeout)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_smoke: no CUDA device; nothing to do")
        return 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cases = [c for c in CASES if not args.only or c[0] in args.only]
    if args.only and "eager" not in args.only:  # the reference the diffs are taken against
        cases = [CASES[0]] + cases
    failed = 0
    with out.open("a") as sink, tempfile.TemporaryDirectory() as tmp:
        def write(row):
            sink.write(json.dumps(row) + "\n")
            sink.flush()
            print(json.dumps(row), flush=True)

        write(environment(args.device))
        models: dict = {}
        eager: dict = {}
        for case in cases:
            if time.perf_counter() - START > args.budget_s:
                write({"case": case[0], "skipped": f"budget of {args.budget_s:.0f} s spent"})
                continue
            try:
                signal.alarm(max(1, int(args.case_timeout)))
                row = run_case(case, args.device, Path(tmp), models, eager)
                row["ok"] = True
            except CaseTimeout:
                failed += 1
                row = {"case": case[0], "ok": False,
                       "error": f"timed out after {args.case_timeout:.0f} s"}
            except Exception as exc:  # noqa: BLE001 - each case's error is the finding
                failed += 1
                row = {"case": case[0], "ok": False,
                       "error": f"{type(exc).__name__}: {str(exc)[:600]}",
                       "where": traceback.format_exc().strip().splitlines()[-6:]}
            finally:
                signal.alarm(0)
            write(row)
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
        write({"case": "summary", "failed": failed, "elapsed_s": round(time.perf_counter() - START, 1)})
    return 0


if __name__ == "__main__":
    sys.exit(main())

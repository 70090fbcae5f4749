"""tests/perf/gpu_check.py's plumbing on the CPU: the tiny configs run every row through the same
code as the H200 check (our apply_load_options, the JSON-lines file, the summary), the budget
skips rows, the FLOP counts match the issue's figures, and without a GPU it exits cleanly."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "perf" / "gpu_check.py"
COMMON = {"row", "model", "status", "device", "tiny", "wall_s", "elapsed_s", "run"}
TIMED = {"s_per_step", "s_per_step_measured", "blocks_measured", "layers", "build_s",
         "pflop_per_step", "tflops", "of_peak", "warmup", "iters"}
OURS = {"speedup_vs_stock", "max_abs_diff_vs_stock", "max_rel_diff_vs_stock", "first_forward_s",
        "compile_s", "attention", "compile", "attention_set", "blocks_compiled", "options"}


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_flops_match_the_issue_figures():
    gpu_check = load_script()
    video = gpu_check.VIDEO
    assert gpu_check.tokens(video) == 21 * 30 * 52 == 32760
    assert gpu_check.latent_shape(video) == (1, 16, 21, 60, 104)
    for model, pflop in (("14B", 3.357), ("1.3B", 0.566)):
        spec = gpu_check.MODELS[model]
        flops = gpu_check.step_flops(spec["config"], spec["layers"], video)
        assert round(flops / 1e15, 3) == pflop, model


def test_tiny_cpu_run_writes_every_row_and_a_summary(tmp_path):
    out = tmp_path / "results.jsonl"
    proc = run("--tiny", "--device", "cpu", "--out", str(out), "--budget-s", "0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines[-1].startswith("SUMMARY (tiny, CPU plumbing) 14B s/step: stock"), lines[-1]
    assert "errors 0" in lines[-1], proc.stdout + proc.stderr[-3000:]

    rows = read_rows(out)
    assert rows[0]["row"] == "env" and rows[0]["torch"] and rows[0]["diffusers"]
    assert rows[-1]["row"] == "summary" and rows[-1]["line"] == lines[-1]
    assert len({r["run"] for r in rows}) == 1
    work = {(r["row"], r["model"], r.get("backend")): r for r in rows[1:-1]}
    # The CPU has one attention backend: PyTorch SDPA ("native").
    assert list(work) == [("attention", "14B", "native"),
                          ("stock", "14B", None), ("ours", "14B", None), ("ours_fp8", "14B", None),
                          ("stock", "1.3B", None), ("ours", "1.3B", None),
                          ("ours_fp8", "1.3B", None)]
    for key, row in work.items():
        assert COMMON <= row.keys(), (key, COMMON - row.keys())
    work = {key[:2]: row for key, row in work.items()}

    attention = work["attention", "14B"]
    assert attention["status"] == "ok", attention
    assert attention["shape"] == [1, 3 * 4 * 4, 2, 16]  # 64x64x9 -> 3 latent frames of 4x4
    assert attention["ms"] > 0 and attention["max_abs_diff_vs_native"] == 0, attention

    for model in ("14B", "1.3B"):
        stock, ours, fp8 = (work[row, model] for row in ("stock", "ours", "ours_fp8"))
        for row in (stock, ours):
            assert row["status"] == "ok", row
            assert TIMED <= row.keys(), TIMED - row.keys()
            assert row["s_per_step"] > 0 and all(v > 0 for v in row["s_per_step_measured"].values())
        assert OURS <= ours.keys(), OURS - ours.keys()
        assert ours["options"]["attention_backend"] == "auto" and ours["options"]["compile"]
        assert isinstance(ours["attention"], str) and isinstance(ours["compile"], str)
        # Same seed, same weights: ours differs from stock by bf16 rounding only.
        assert math.isfinite(ours["max_abs_diff_vs_stock"])
        assert ours["max_rel_diff_vs_stock"] < 0.2, ours
        # fp8 needs an fp8 GPU: on the CPU the engine refuses it and the row says why.
        assert fp8["status"] in ("ok", "skipped"), fp8
        if fp8["status"] == "skipped":
            assert "fp8" in fp8["reason"], fp8
    assert work["stock", "14B"]["blocks_measured"] == [1, 2]
    assert {"per_block_s", "fixed_s"} <= work["ours", "14B"].keys()
    assert work["stock", "1.3B"]["blocks_measured"] == [2]


def test_budget_skips_rows_and_filters_choose_them(tmp_path):
    out = tmp_path / "results.jsonl"
    proc = run("--tiny", "--device", "cpu", "--out", str(out), "--budget-s", "0.001",
               "--models", "1.3B", "--only", "stock", "ours")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_rows(out)
    assert [(r["row"], r.get("model")) for r in rows] == [
        ("env", None), ("stock", "1.3B"), ("ours", "1.3B"), ("summary", None)]
    for row in rows[1:3]:
        assert row["status"] == "skipped" and row["reason"].startswith("budget"), row
    assert "skipped 2" in proc.stdout.splitlines()[-1]


def test_without_a_gpu_it_says_so_and_exits_0(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    out = tmp_path / "results.jsonl"
    proc = run("--out", str(out), timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "No CUDA GPU is visible" in proc.stdout
    assert not out.exists()


def test_wrapper_needs_a_wheels_folder():
    proc = subprocess.run(["bash", str(ROOT / "tests" / "perf" / "gpu_check.sh")], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "usage" in proc.stderr


def test_runs_without_opencv(tmp_path):
    """A bare GPU machine may lack OpenCV, which engine/__init__ imports: the check loads the
    engine modules it needs without it."""
    out = tmp_path / "results.jsonl"
    code = ("import runpy, sys; sys.modules['cv2'] = None; "
            f"sys.argv = ['gpu_check.py', '--tiny', '--device', 'cpu', '--out', {str(out)!r}, "
            "'--models', '1.3B', '--only', 'attention']; "
            f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    env, attention, summary = read_rows(out)
    assert env["engine_import"].startswith("modules only"), env
    assert env["contract"] == {"quantize_option": True, "attention_module": True}, env
    assert attention["status"] == "ok" and attention["source"].startswith("engine.diffusers.attention")
    assert summary["counts"] == {"ok": 1, "skipped": 0, "error": 0}

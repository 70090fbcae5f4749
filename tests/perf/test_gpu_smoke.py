"""tests/perf/gpu_smoke.py's plumbing on the CPU: cases run through the engines and write one
JSON row each (with the diff to eager), an option that fails is a row with its error, not a
crash, and the budget skips what it cannot fit."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
torch.set_num_threads(1)


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_smoke", ROOT / "tests/perf/gpu_smoke.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cases_write_rows_with_errors_and_skips(tmp_path, monkeypatch):
    smoke = load_script()
    out = tmp_path / "smoke.jsonl"
    assert smoke.main(["--device", "cpu", "--out", str(out), "--only", "fp8_storage", "fp8"]) == 0
    rows = {r["case"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert list(rows) == ["environment", "eager", "fp8_storage", "fp8", "summary"]
    assert rows["eager"]["ok"] and rows["eager"]["shape"] == [9, 64, 64, 3]
    assert rows["fp8_storage"]["ok"] and "max_diff_to_eager" in rows["fp8_storage"]
    assert not rows["fp8"]["ok"] and "compute capability" in rows["fp8"]["error"]  # CPU: no fp8
    assert rows["summary"]["failed"] == 1

    monkeypatch.setattr(smoke, "START", smoke.time.perf_counter() - 1000)
    skipped = tmp_path / "skipped.jsonl"
    smoke.main(["--device", "cpu", "--out", str(skipped), "--only", "compile"])
    rows = [json.loads(line) for line in skipped.read_text().splitlines()]
    assert [r.get("skipped", "")[:6] for r in rows[1:3]] == ["budget"] * 2


def test_helper_model_cases_compare_with_the_cpu(tmp_path):
    smoke = load_script()
    out = tmp_path / "helpers.jsonl"
    assert smoke.main(["--device", "cpu", "--out", str(out), "--only", "wan_animate+pose",
                       "pose_on_device"]) == 0
    rows = {r["case"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows["wan_animate+pose"]["ok"] and rows["wan_animate+pose"]["shape"] == [9, 112, 128, 3]
    assert rows["pose_on_device"]["ok"] and rows["pose_on_device"]["shape"] == [16, 17, 3]
    assert rows["pose_on_device"]["max_diff_to_cpu"] == 0.0  # the CPU against itself

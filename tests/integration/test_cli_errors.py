"""The real CLI on bad input: exit status 2, the key path on stderr, no traceback, nothing written.

Each case runs `python -m flows.render` in a fresh process inside tmp_path (about a second each;
no rendering happens and Prefect is never imported on these paths).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers.bad_inputs import BAD_CONFIG, BAD_STORYBOARDS

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Runs the CLI exactly as `python -m flows.render` does, then reports on stderr whether Prefect
# was imported (it must not be for invalid input or a dry run: those must answer quickly).
WRAPPER = """
import runpy, sys
code = 0
try:
    runpy.run_module("flows.render", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
print("PREFECT_IMPORTED=%s" % any(m == "prefect" or m.startswith("prefect.") for m in sys.modules),
      file=sys.stderr)
sys.exit(code)
"""

GOOD = """
title: Good
fps: 16
resolution: 256x144
shots:
  - {id: a, prompt: "A red ball ${not_interpolated}", duration: 1s}
  - id: b
    start: chain
    segments:
      - {prompt: "rolls left", duration: 1s}
      - {prompt: "rolls right", duration: 1s}
post: [interpolate2x]
"""


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(PROJECT_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", WRAPPER, *args, f"output_dir={tmp_path}/out"]
    return subprocess.run(command, cwd=tmp_path, env=_env(tmp_path), capture_output=True,
                          text=True, timeout=120)


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "good.yaml").write_text(GOOD.lstrip(), encoding="utf-8")
    return tmp_path


def write(work: Path, name: str, text: str) -> str:
    (work / name).write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return name


def assert_rejected(work: Path, result: subprocess.CompletedProcess, *fragments: str,
                    before: list[str]) -> None:
    report = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 2, report
    for fragment in fragments:
        assert fragment in result.stderr, report
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, report
    assert "PREFECT_IMPORTED=False" in result.stderr, report
    assert not (work / "out").exists(), files_under(work / "out")
    assert files_under(work) == before, "the CLI wrote files into its working directory"


@pytest.mark.parametrize("name,text,fragments", BAD_STORYBOARDS,
                         ids=[c[0] for c in BAD_STORYBOARDS])
def test_bad_storyboard_exits_2_and_writes_nothing(work: Path, name, text, fragments):
    storyboard = write(work, "bad.yaml", text)
    before = files_under(work)
    result = run_cli(work, f"storyboard={storyboard}")
    assert_rejected(work, result, *fragments, "Nothing was rendered", before=before)


@pytest.mark.parametrize("name,args,fragments", BAD_CONFIG, ids=[c[0] for c in BAD_CONFIG])
def test_bad_config_exits_2_and_writes_nothing(work: Path, name, args, fragments):
    before = files_under(work)
    result = run_cli(work, *args)
    assert_rejected(work, result, *fragments, before=before)


def test_dry_run_prints_the_plan_and_writes_nothing(work: Path):
    before = files_under(work)
    result = run_cli(work, "storyboard=good.yaml", "dry_run=true")
    report = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, report
    assert "PREFECT_IMPORTED=False" in result.stderr, report
    rows = [line.split() for line in result.stdout.splitlines()]
    segments = [row for row in rows if row and row[0] in ("a", "b")]
    assert len(segments) == 3, report  # a[0], b[0], b[1]
    assert all("miss" in row for row in segments), report
    assert "${not_interpolated}" in result.stdout, report  # prompts are data, never resolved
    assert "3 segments (0 cached, 3 to render)" in result.stdout, report
    assert not (work / "out").exists(), files_under(work / "out")
    assert files_under(work) == before

"""Fuzzing the schema and the planner with hypothesis: any storyboard either validates and plans,
or is rejected with StoryboardInvalid (problems with key paths). Never another exception.

Storyboards are generated as structures close to the format (right keys, values from valid,
boundary and wrong-typed pools, sometimes junk anywhere) and as raw text mutated from a valid
file. Example counts are modest so the suite stays fast; raise REELFORGE_FUZZ_EXAMPLES to dig.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.preview import PREVIEW_SPEC
from flows.config.settings import post_presets
from stages.plan.build import build_plan
from stages.storyboard.problems import StoryboardInvalid
from stages.storyboard.validate import ValidateOptions, validate_storyboard
from tests.helpers.synthetic import write_png

EXAMPLES = int(os.environ.get("REELFORGE_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# One folder for every example (function-scoped fixtures are not reset between examples).
FOLDER = Path(tempfile.mkdtemp(prefix="reelforge-fuzz-"))
write_png(FOLDER / "ok.png", 64, 48)
(FOLDER / "text.png").write_text("not an image")
OPTIONS = ValidateOptions(post_presets=post_presets())

junk = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=6)


def value(*pools):
    """Mostly values from `pools`, sometimes anything at all."""
    return st.one_of(*pools, junk) if pools else junk


durations = value(st.sampled_from(["1s", "2.5s", "500ms", "0s", "-1s", "10h", "5 seconds", ""]),
                  st.floats(-5, 700), st.integers(-3, 900))
frames = value(st.integers(-2, 400), st.sampled_from([0, 1, 5, 9, 81, 10_001]))
texts = value(st.text(max_size=60), st.sampled_from(["${oc.env:HOME}", "_target_", "é ✓ 🎬"]))
ids = value(st.sampled_from(["a", "b", "c", "s01", "s-2", "A", "../x", "", "x" * 65]))
images = value(st.sampled_from(["ok.png", "text.png", "missing.png", "../ok.png", "/etc/hosts",
                                "https://example.invalid/x.png", "file:///x", "."]))
numbers = st.floats(-1000, 1000) | st.integers(-1000, 1000)
camera_move = st.fixed_dictionaries({}, optional={
    "pan_x": value(numbers), "pan_y": value(numbers), "zoom": value(numbers),
    "rotate": value(numbers), "tilt": value(numbers),
    "ease": value(st.sampled_from(["linear", "in", "out", "in_out", "bounce"]))})
camera_key = st.fixed_dictionaries({"at": durations}, optional={
    "pan_x": value(numbers), "zoom": value(numbers), "ease": value(st.just("in_out"))})
cameras = value(camera_move, st.lists(camera_key, max_size=4))
transitions = value(st.sampled_from(["cut", "crossfade", "wipe"]),
                    st.fixed_dictionaries({"type": value(st.sampled_from(["cut", "crossfade"]))},
                                          optional={"duration": durations}))
segment = st.fixed_dictionaries({}, optional={
    "prompt": texts, "duration": durations, "frames": frames, "seed": value(st.integers(-1, 99)),
    "end_image": images, "negative": texts})
shot = st.fixed_dictionaries({"id": ids}, optional={
    "prompt": texts, "duration": durations, "frames": frames, "camera": cameras,
    "start": value(st.sampled_from(["chain", "none", "previous"])),
    "segments": value(st.lists(segment, max_size=3)), "transition": transitions,
    "seed": value(st.integers(-1, 2**64)), "image": images, "end_image": images,
    "negative": texts, "_target_": st.just("os.system")})
storyboards = st.fixed_dictionaries({"shots": value(st.lists(shot, max_size=4))}, optional={
    "title": texts, "fps": value(st.integers(-1, 200)),
    "resolution": value(st.sampled_from(["256x144", "832x480", "100x100", "64x64", "8x8",
                                         "832*480", [256, 144]])),
    "seed": value(st.integers(-1, 2**64)),
    "defaults": value(st.fixed_dictionaries({}, optional={
        "prompt": texts, "duration": durations, "camera": cameras, "image": images,
        "transition": transitions})),
    "post": value(st.lists(value(st.sampled_from(["interpolate2x", "interpolat2x"]),
                                 st.fixed_dictionaries({"stage": value(st.just("interpolate"))},
                                                       optional={"factor": value(numbers)})),
                           max_size=2)),
    "output": value(st.fixed_dictionaries({}, optional={
        "fps": value(numbers), "crf": value(st.integers(-5, 60)),
        "codec": value(st.sampled_from(["h264", "h265", "vp9"]))})),
})


def check(text: str) -> None:
    """Validate and plan `text`; the only acceptable failure is StoryboardInvalid."""
    path = FOLDER / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        vs = validate_storyboard(path, PREVIEW_SPEC, OPTIONS)
    except StoryboardInvalid as exc:
        assert exc.problems and all(p.key_path and p.message for p in exc.problems)
        return
    plan = build_plan(vs, {"engine": "preview", "revision": "fuzz"})
    assert plan.shots and all(job.frames >= 1 and job.key for job in plan.segments())


@FUZZ
@given(storyboards)
def test_generated_storyboards_validate_and_plan_or_fail_cleanly(data):
    check(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


VALID = """title: Fuzz
fps: 16
resolution: 256x144
shots:
  - {id: a, prompt: "x", duration: 1s, camera: {zoom: 0.1}, image: ok.png}
  - id: b
    start: chain
    segments:
      - {prompt: "y", duration: 1s}
      - {prompt: "z", frames: 9}
    camera:
      - {at: 0s, pan_x: 0}
      - {at: 1s, pan_x: 0.2, ease: in_out}
post: [interpolate2x]
"""


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(VALID)), st.integers(0, 4),
                          st.text(alphabet=":-[]{}&*!|>'\"#%@`,? \n\t0123456789sxé", max_size=4)),
                min_size=1, max_size=4))
def test_mutated_text_validates_and_plans_or_fails_cleanly(edits):
    text = VALID
    for at, cut, insert in edits:
        at = min(at, len(text))
        text = text[:at] + insert + text[at + cut:]
    check(text)


def test_the_unmutated_storyboard_is_valid():
    check(VALID)
    assert validate_storyboard(FOLDER / "fuzz.yaml", PREVIEW_SPEC, OPTIONS)


@pytest.mark.parametrize("text", ["", "\0", "\ufeff", "shots:\n  - !!python/object:os.system {}\n",
                                  "shots: [" * 500, "a: " + "[" * 2000 + "]" * 2000])
def test_hostile_text(text):
    check(text)

"""Planning: storyboard -> RenderPlan (frames, seeds, chaining DAG, camera paths, content keys)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from engine.base import CameraState, FrameRule
from engine.preview import PREVIEW_SPEC
from stages.plan.build import RenderPlan, SegmentRef, build_plan, derive_seed
from stages.storyboard.validate import ValidateOptions, validate_storyboard
from tests.helpers.boards import ENGINE, PARAMS, plan_from, plan_of, shot_jobs, write_board

RULE = PREVIEW_SPEC.frame_rule
MAX = PREVIEW_SPEC.max_frames



# -- helpers ----------------------------------------------------------------------------------


def keys(plan: RenderPlan) -> dict[tuple[str, int], str]:
    return {(j.shot_id, j.index): j.key for j in plan.segments()}


def shot_keys(plan: RenderPlan) -> dict[str, str]:
    return {s.id: s.key for s in plan.shots}


def write_png(path: Path, seed: int = 0, size: tuple[int, int] = (32, 18)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def change_one_pixel(path: Path) -> None:
    with Image.open(path) as img:
        pixels = np.array(img)
    pixels[0, 0, 0] ^= 0xFF
    Image.fromarray(pixels).save(path)


# -- frames -----------------------------------------------------------------------------------


def test_duration_is_snapped_to_the_frame_rule_with_a_warning(tmp_path):
    plan = plan_of(tmp_path, [{"id": "s01", "prompt": "a", "duration": "5s"}])
    (job,) = plan.segments()
    assert job.frames == 81 and job.fps == 16
    assert not job.drop_first and job.clip_frames == 81
    assert len(plan.warnings) == 1
    assert "s01" in plan.warnings[0] and "80" in plan.warnings[0] and "81" in plan.warnings[0]


def test_explicit_valid_frames_are_kept_without_warning(tmp_path):
    plan = plan_of(tmp_path, [{"id": "s01", "prompt": "a", "frames": 33}])
    (job,) = plan.segments()
    assert job.frames == 33
    assert plan.warnings == []


@pytest.mark.parametrize("duration, frames", [
    ("2.5s", 41),  # 40 -> 41
    ("3s", 49),  # 48 -> 49
    ("2s", 33),  # 32 -> 33
    ("1s", 17),  # 16 -> 17
    ("0.1s", 5),  # 2 -> the minimum
])
def test_durations_snap_to_nearest_valid_count(tmp_path, duration, frames):
    plan = plan_of(tmp_path, [{"id": "shot-x", "prompt": "a", "duration": duration}])
    (job,) = plan.segments()
    assert job.frames == frames
    assert len(plan.warnings) == 1 and "shot-x" in plan.warnings[0]


def test_exact_valid_duration_gives_no_warning(tmp_path):
    plan = plan_of(tmp_path, [{"id": "s01", "prompt": "a", "duration": "2.0625s"}])
    assert next(plan.segments()).frames == 33 and plan.warnings == []  # 2.0625 s * 16 = 33
    plan = plan_of(tmp_path, [{"id": "s01", "prompt": "a", "duration": "2.125s"}], fps=8)
    job = next(plan.segments())
    assert (job.frames, job.fps) == (17, 8) and plan.warnings == []


def test_fps_override_changes_frames(tmp_path):
    path = write_board(tmp_path / "b", [{"id": "s01", "prompt": "a", "duration": "2s"}])
    assert next(plan_from(path).segments()).frames == 33
    job = next(plan_from(path, fps=24).segments())
    assert (job.frames, job.fps) == (49, 24)


def test_chained_segments_get_one_extra_frame(tmp_path):
    plan = plan_of(tmp_path, [{
        "id": "s01",
        "segments": [
            {"prompt": "a", "duration": "3s"},
            {"prompt": "b", "duration": "3s"},
            {"prompt": "c", "duration": "2.5s"},
        ],
    }])
    jobs = shot_jobs(plan, "s01")
    # 48 -> 49 (warning); 48 + 1 repeated frame = 49 (exact); 40 + 1 = 41 (exact).
    assert [j.frames for j in jobs] == [49, 49, 41]
    assert [j.drop_first for j in jobs] == [False, True, True]
    assert [j.clip_frames for j in jobs] == [49, 48, 40]
    assert plan.shots[0].frames == 49 + 48 + 40
    assert len(plan.warnings) == 1 and "s01 segment 0" in plan.warnings[0]


def test_chain_shot_first_segment_gets_one_extra_frame(tmp_path):
    plan = plan_of(tmp_path, [
        {"id": "s01", "prompt": "a", "duration": "2s"},
        {"id": "s02", "prompt": "b", "duration": "5s", "start": "chain"},
    ])
    (first,) = shot_jobs(plan, "s01")
    (job,) = shot_jobs(plan, "s02")
    assert first.frames == 33 and not first.drop_first
    assert job.frames == 81 and job.drop_first and job.clip_frames == 80
    assert plan.shots[1].frames == 80  # exactly 5 s at 16 fps
    assert not any("s02" in w for w in plan.warnings)


def test_explicit_frames_on_a_chained_segment_are_kept(tmp_path):
    plan = plan_of(tmp_path, [{
        "id": "s01",
        "segments": [{"prompt": "a", "frames": 33}, {"prompt": "b", "frames": 33}],
    }])
    jobs = shot_jobs(plan, "s01")
    assert [j.frames for j in jobs] == [33, 33]
    assert [j.clip_frames for j in jobs] == [33, 32]
    assert plan.warnings == []


def test_frames_default_is_frames_on_segments_too(tmp_path):
    # `defaults: {frames: 33}` means 33 generated frames on every segment, chained or not.
    plan = plan_of(
        tmp_path,
        [{"id": "s01", "prompt": "p", "segments": [{"prompt": "a"}, {"prompt": "b"}]}],
        defaults={"frames": 33},
    )
    assert [j.frames for j in shot_jobs(plan, "s01")] == [33, 33]
    assert plan.warnings == []


def test_shot_duration_beats_a_frames_default(tmp_path):
    plan = plan_of(
        tmp_path,
        [{"id": "s01", "prompt": "a", "duration": "5s"}, {"id": "s02", "prompt": "b"}],
        defaults={"frames": 33},
    )
    assert shot_jobs(plan, "s01")[0].frames == 81
    assert shot_jobs(plan, "s02")[0].frames == 33


def test_segment_duration_beats_a_frames_default(tmp_path):
    plan = plan_of(
        tmp_path,
        [{"id": "s01", "segments": [{"prompt": "a", "duration": "1s"}, {"prompt": "b"}]}],
        defaults={"frames": 33},
    )
    assert [j.frames for j in shot_jobs(plan, "s01")] == [17, 33]


def test_long_shot_is_split_into_equal_chained_segments(tmp_path):
    plan = plan_of(tmp_path, [{"id": "s01", "prompt": "a", "duration": "12s"}])
    jobs = shot_jobs(plan, "s01")
    assert len(jobs) == 3
    assert len({j.frames for j in jobs}) == 1
    assert all(RULE.is_valid(j.frames) and j.frames <= MAX for j in jobs)
    assert [j.drop_first for j in jobs] == [False, True, True]
    assert [j.start.kind for j in jobs] == ["none", "chain", "chain"]
    assert [j.prompt for j in jobs] == ["a"] * 3
    # 192 frames wanted; the split is within one frame-rule step of that.
    assert abs(plan.shots[0].frames - 192) <= RULE.step
    assert len(plan.warnings) == 1
    assert "s01" in plan.warnings[0] and "3 chained segments" in plan.warnings[0]


def test_long_chain_shot_is_split_too(tmp_path):
    plan = plan_of(tmp_path, [
        {"id": "s01", "prompt": "a", "duration": "1s"},
        {"id": "s02", "prompt": "b", "duration": "10s", "start": "chain"},
    ])
    jobs = shot_jobs(plan, "s02")
    assert [j.frames for j in jobs] == [81, 81]  # 160 + 1 repeated frame
    assert all(j.drop_first for j in jobs)
    assert plan.shots[1].frames == 160
    assert any("s02" in w and "2 chained segments" in w for w in plan.warnings)


def test_long_explicit_frames_are_split(tmp_path):
    plan = plan_of(tmp_path, [{"id": "s01", "prompt": "a", "frames": 161}])
    jobs = shot_jobs(plan, "s01")
    assert [j.frames for j in jobs] == [81, 81]
    assert plan.shots[0].frames == 161


@pytest.mark.parametrize("seconds", [0.3, 1, 2.2, 4.9, 5, 5.1, 7.7, 10, 15.3, 20.6, 30, 61.9])
@pytest.mark.parametrize("chain", [False, True])
def test_every_job_has_a_valid_frame_count(tmp_path, seconds, chain):
    second = {"id": "s02", "prompt": "b", "duration": seconds}
    if chain:
        second["start"] = "chain"
    plan = plan_of(tmp_path, [{"id": "s01", "prompt": "a", "duration": "1s"}, second])
    jobs = shot_jobs(plan, "s02")
    assert all(RULE.is_valid(j.frames) and j.frames <= MAX for j in jobs)
    # Nearest: within half of one frame-rule step per piece (equal pieces move together),
    # plus the rounding of seconds to frames.
    assert abs(plan.shots[1].frames - seconds * 16) <= len(jobs) * RULE.step / 2 + 0.5
    if len(jobs) > 1:
        assert len({j.frames for j in jobs}) == 1


# -- FrameRule --------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", [
    FrameRule(),
    FrameRule(step=8, offset=1, minimum=9),
    FrameRule(step=8, offset=0, minimum=8),
    FrameRule(step=4, offset=1, minimum=6),  # minimum itself is not 4n+1
    FrameRule(step=8, offset=1, minimum=1),
])
def test_frame_rule_snap_is_always_valid_and_nearest(rule):
    valid = [n for n in range(0, 400) if rule.is_valid(n)]
    for frames in range(0, 300):
        got = rule.snap(frames)
        assert rule.is_valid(got), (frames, got)
        best = min(abs(v - frames) for v in valid)
        if frames >= valid[0]:
            assert abs(got - frames) == best, (frames, got)
            # Ties go up: a shot never gets shorter than asked when both are equally near.
            if frames + best in valid and frames - best in valid:
                assert got == frames + best
        else:
            assert got == valid[0]


def test_frame_rule_snap_examples():
    rule = FrameRule(step=4, offset=1, minimum=5)
    assert [rule.snap(n) for n in (1, 5, 6, 7, 8, 9, 40, 80, 81)] == [5, 5, 5, 9, 9, 9, 41, 81, 81]
    assert rule.describe() == "4n+1"
    assert FrameRule(step=8, offset=0, minimum=8).describe() == "8n"


# -- seeds ------------------------------------------------------------------------------------


def test_seeds_derive_from_base_seed_shot_and_index(tmp_path):
    shots = [
        {"id": "s01", "prompt": "a", "duration": "2s"},
        {"id": "s02", "segments": [{"prompt": "b", "duration": "2s"},
                                   {"prompt": "c", "duration": "2s"}]},
    ]
    plan = plan_of(tmp_path, shots, seed=99)
    seeds = {(j.shot_id, j.index): j.seed for j in plan.segments()}
    assert seeds == {
        ("s01", 0): derive_seed(99, "s01", 0),
        ("s02", 0): derive_seed(99, "s02", 0),
        ("s02", 1): derive_seed(99, "s02", 1),
    }
    assert len(set(seeds.values())) == 3
    assert all(0 <= s < 2**31 for s in seeds.values())
    again = plan_of(tmp_path, shots, seed=99)
    assert {(j.shot_id, j.index): j.seed for j in again.segments()} == seeds
    other = plan_of(tmp_path, shots, seed=100)
    assert all(
        seeds[(j.shot_id, j.index)] != j.seed for j in other.segments()
    )


def test_derive_seed_is_deterministic_and_distinct():
    assert derive_seed(1, "s01", 0) == derive_seed(1, "s01", 0)
    seeds = {derive_seed(b, s, i) for b in (0, 1) for s in ("s01", "s02") for i in (0, 1, 2)}
    assert len(seeds) == 12


def test_reordering_shots_keeps_each_shots_seeds(tmp_path):
    a = {"id": "s01", "prompt": "a", "duration": "2s"}
    b = {"id": "s02", "prompt": "b", "duration": "12s"}  # split: 3 jobs
    c = {"id": "s03", "prompt": "c", "duration": "1s"}
    one = plan_of(tmp_path, [a, b, c])
    two = plan_of(tmp_path, [c, b, a])
    seeds_one = {(j.shot_id, j.index): j.seed for j in one.segments()}
    seeds_two = {(j.shot_id, j.index): j.seed for j in two.segments()}
    assert seeds_one == seeds_two
    # Independent shots that did not change keep their keys too.
    assert keys(one) == keys(two)


def test_explicit_segment_and_shot_seeds(tmp_path):
    plan = plan_of(tmp_path, [
        {"id": "s01", "seed": 100, "segments": [
            {"prompt": "a", "duration": "1s"},
            {"prompt": "b", "duration": "1s", "seed": 7},
            {"prompt": "c", "duration": "1s"},
        ]},
        {"id": "s02", "prompt": "d", "duration": "1s", "seed": 5},
        {"id": "s03", "segments": [{"prompt": "e", "duration": "1s", "seed": 11},
                                   {"prompt": "f", "duration": "1s"}]},
        {"id": "s04", "prompt": "g", "duration": "12s", "seed": 40},
    ], seed=3)
    assert [j.seed for j in shot_jobs(plan, "s01")] == [100, 7, 102]
    assert [j.seed for j in shot_jobs(plan, "s02")] == [5]
    assert [j.seed for j in shot_jobs(plan, "s03")] == [11, derive_seed(3, "s03", 1)]
    assert [j.seed for j in shot_jobs(plan, "s04")] == [40, 41, 42]


def test_explicit_seeds_ignore_the_base_seed(tmp_path):
    shots = [{"id": "s01", "prompt": "a", "duration": "1s", "seed": 5}]
    assert keys(plan_of(tmp_path, shots, seed=1)) == keys(plan_of(tmp_path, shots, seed=2))


# -- chaining DAG -----------------------------------------------------------------------------


def dag_board(directory: Path) -> Path:
    write_png(directory / "assets" / "start.png", seed=1)
    return write_board(directory, [
        {"id": "s01", "prompt": "a", "duration": "2s"},
        {"id": "s02", "start": "chain", "segments": [
            {"prompt": "b", "duration": "2s"},
            {"prompt": "c", "duration": "2s"},
            {"prompt": "d", "duration": "2s"},
        ]},
        {"id": "s03", "prompt": "e", "duration": "2s", "image": "assets/start.png"},
        {"id": "s04", "prompt": "f", "duration": "2s", "start": "chain"},
        {"id": "s05", "prompt": "g", "duration": "2s", "start": "none"},
    ])


def test_chaining_dag(tmp_path):
    plan = plan_from(dag_board(tmp_path))
    assert [s.id for s in plan.shots] == ["s01", "s02", "s03", "s04", "s05"]
    assert all(s.include for s in plan.shots)
    (s01,) = shot_jobs(plan, "s01")
    s02 = shot_jobs(plan, "s02")
    (s03,) = shot_jobs(plan, "s03")
    (s04,) = shot_jobs(plan, "s04")
    (s05,) = shot_jobs(plan, "s05")

    assert s01.start.kind == "none" and s01.start.upstream is None and s01.start.image is None
    assert s02[0].start.kind == "chain" and s02[0].start.upstream == SegmentRef("s01", 0)
    assert s02[1].start.upstream == SegmentRef("s02", 0)
    assert s02[2].start.upstream == SegmentRef("s02", 1)
    assert all(j.start.kind == "chain" and j.start.image is None for j in s02)

    assert s03.start.kind == "image" and s03.start.upstream is None
    assert s03.start.image == (tmp_path / "assets" / "start.png").resolve()
    assert s03.start.image.is_absolute()

    assert s04.start.kind == "chain" and s04.start.upstream == s03.ref
    assert s05.start.kind == "none" and s05.start.upstream is None
    assert str(s02[1].ref) == "s02[1]" and s02[1].label == "s02_1"


def test_segments_come_after_their_upstreams(tmp_path):
    plan = plan_from(dag_board(tmp_path))
    seen: set[SegmentRef] = set()
    for job in plan.segments():
        if job.start.upstream is not None:
            assert job.start.upstream in seen
        seen.add(job.ref)


def test_end_images_go_to_the_right_pieces(tmp_path):
    write_png(tmp_path / "end.png", seed=2)
    write_png(tmp_path / "mid.png", seed=3)
    plan = plan_from(write_board(tmp_path, [
        {"id": "s01", "prompt": "a", "duration": "12s", "end_image": "end.png"},
        {"id": "s02", "end_image": "end.png", "segments": [
            {"prompt": "b", "duration": "2s", "end_image": "mid.png"},
            {"prompt": "c", "duration": "2s"},
            {"prompt": "d", "duration": "2s"},
        ]},
    ]))
    end, mid = (tmp_path / "end.png").resolve(), (tmp_path / "mid.png").resolve()
    assert [j.end_image for j in shot_jobs(plan, "s01")] == [None, None, end]
    assert [j.end_image for j in shot_jobs(plan, "s02")] == [mid, None, end]


def test_subset_includes_upstream_shots_not_in_output(tmp_path):
    shots = [
        {"id": "s01", "prompt": "a", "duration": "5s"},  # snap warning; unrelated to s03
        {"id": "s02", "prompt": "b", "duration": "2s"},
        {"id": "s03", "prompt": "c", "duration": "2s", "start": "chain"},
        {"id": "s04", "prompt": "d", "duration": "2s"},
    ]
    path = write_board(tmp_path, shots)
    full = plan_from(path)
    plan = plan_from(path, shots=["s03"])
    assert [(s.id, s.include) for s in plan.shots] == [("s02", False), ("s03", True)]
    assert [s.id for s in plan.included()] == ["s03"]
    assert shot_jobs(plan, "s03")[0].start.upstream == SegmentRef("s02", 0)
    # The same segments have the same keys whether or not the rest of the episode is planned.
    full_keys = keys(full)
    assert all(full_keys[k] == v for k, v in keys(plan).items())
    # Warnings are about the shots this plan renders only.
    assert not any("s01" in w for w in plan.warnings)
    assert any("s01" in w for w in full.warnings)
    # The episode differs from the full one.
    assert plan.key != full.key


def test_subset_follows_chains_transitively(tmp_path):
    path = write_board(tmp_path, [
        {"id": "s01", "prompt": "a", "duration": "2s"},
        {"id": "s02", "prompt": "b", "duration": "2s", "start": "chain"},
        {"id": "s03", "prompt": "c", "duration": "2s", "start": "chain"},
        {"id": "s04", "prompt": "d", "duration": "2s", "start": "chain"},
    ])
    plan = plan_from(path, shots=["s03"])
    assert [(s.id, s.include) for s in plan.shots] == [
        ("s01", False), ("s02", False), ("s03", True)]
    plan = plan_from(path, shots=["s01", "s04"])
    assert [(s.id, s.include) for s in plan.shots] == [
        ("s01", True), ("s02", False), ("s03", False), ("s04", True)]


def test_subset_of_an_independent_shot_plans_only_it(tmp_path):
    path = write_board(tmp_path, [
        {"id": "s01", "prompt": "a", "duration": "2s"},
        {"id": "s02", "prompt": "b", "duration": "2s", "start": "chain"},
        {"id": "s03", "prompt": "c", "duration": "2s"},
    ])
    plan = plan_from(path, shots=["s03"])
    assert [(s.id, s.include) for s in plan.shots] == [("s03", True)]
    assert shot_jobs(plan, "s03")[0].start.kind == "none"


# -- camera in the plan -----------------------------------------------------------------------


def assert_continuous(jobs) -> None:
    for job in jobs:
        assert len(job.camera) == job.frames
    for prev, job in zip(jobs, jobs[1:]):
        assert job.camera[0] == prev.camera[-1]


@pytest.mark.parametrize("shot", [
    {"id": "s02", "prompt": "p", "duration": "3s"},
    {"id": "s02", "prompt": "p", "duration": "12s"},
    {"id": "s02", "prompt": "p", "duration": "12s", "start": "chain"},
    {"id": "s02", "prompt": "p", "duration": "3s", "start": "chain"},
    {"id": "s02", "segments": [{"prompt": "a", "duration": "2.5s"},
                               {"prompt": "b", "frames": 33},
                               {"prompt": "c", "duration": "7s"}]},
])
@pytest.mark.parametrize("ease_kind", ["linear", "in_out"])
def test_constant_move_reaches_its_values_at_the_last_frame(tmp_path, shot, ease_kind):
    move = {"pan_x": 0.2, "zoom": 0.3, "rotate": 12.0, "ease": ease_kind}
    plan = plan_of(tmp_path, [{"id": "s01", "prompt": "x", "duration": "1s"},
                              {**shot, "camera": move}])
    jobs = shot_jobs(plan, "s02")
    assert_continuous(jobs)
    target = CameraState(pan_x=0.2, zoom=0.3, rotate=12.0)
    assert jobs[-1].camera[-1] == target  # exactly, not approximately
    first_new = 1 if jobs[0].drop_first else 0  # frame 0 of a chain shot is the upstream's
    assert jobs[0].camera[first_new] == CameraState()
    # One state per frame of the shot's clip; the target is reached at the last one only.
    flat = [s for j in jobs for s in j.camera[(1 if j.drop_first else 0):]]
    assert len(flat) == plan.shots[1].frames
    assert all(s != target for s in flat[:-1])
    # The move is spread over the whole shot: it is half way near the middle frame.
    if ease_kind == "linear":
        middle = flat[(len(flat) - 1) // 2]
        assert middle.zoom == pytest.approx(0.15, abs=0.3 / (len(flat) - 1))
    # The unrelated shot has no camera move.
    assert all(s == CameraState() for s in shot_jobs(plan, "s01")[0].camera)


def test_keyframes_across_segments(tmp_path):
    plan = plan_of(tmp_path, [{
        "id": "s01",
        "segments": [{"prompt": "a", "duration": "3s"}, {"prompt": "b", "duration": "3s"}],
        "camera": [{"at": "0s", "pan_x": 0.0, "zoom": 0.1},
                   {"at": "6s", "pan_x": 0.2, "ease": "in_out"}],
    }])
    first, second = shot_jobs(plan, "s01")
    assert_continuous([first, second])
    assert first.start_time == 0.0 and second.start_time == 3.0
    assert first.camera[0] == CameraState(zoom=0.1)
    # At 3 s the in_out ease is half way; the zoom carries over from the first key.
    assert first.camera[-1].pan_x == pytest.approx(0.1, abs=1e-12)
    assert first.camera[-1].zoom == pytest.approx(0.1, abs=1e-12)
    assert second.camera[-1] == CameraState(pan_x=0.2, zoom=0.1)
    # Ease in_out: the first quarter moves less than linear would.
    quarter = first.camera[24]  # 1.5 s
    assert quarter.pan_x == pytest.approx(0.2 * 0.15625, abs=1e-12)


def test_keyframes_hold_before_first_and_after_last(tmp_path):
    plan = plan_of(tmp_path, [{
        "id": "s01", "prompt": "a", "duration": "4s",
        "camera": [{"at": "1s", "tilt": 5.0}, {"at": "2s", "tilt": -5.0, "ease": "in"}],
    }])
    (job,) = shot_jobs(plan, "s01")
    assert job.frames == 65
    assert all(s == CameraState(tilt=5.0) for s in job.camera[:17])  # up to 1 s
    assert job.camera[24].tilt == pytest.approx(5.0 - 10.0 * 0.25, abs=1e-12)  # 1.5 s
    assert all(s == CameraState(tilt=-5.0) for s in job.camera[32:])  # from 2 s


def test_camera_default_is_inherited_and_keys_see_it(tmp_path):
    shots = [{"id": "s01", "prompt": "a", "duration": "2s"},
             {"id": "s02", "prompt": "b", "duration": "2s", "camera": {"pan_y": 0.1}}]
    plan = plan_of(tmp_path, shots, defaults={"camera": {"zoom": 0.2}})
    assert shot_jobs(plan, "s01")[0].camera[-1] == CameraState(zoom=0.2)
    assert shot_jobs(plan, "s02")[0].camera[-1] == CameraState(pan_y=0.1)
    without = plan_of(tmp_path, shots)
    assert keys(plan)[("s01", 0)] != keys(without)[("s01", 0)]
    assert keys(plan)[("s02", 0)] == keys(without)[("s02", 0)]


# -- content keys -----------------------------------------------------------------------------


def key_board(directory: Path, **changes: Any) -> Path:
    """One shot with every input set; `changes` override shot keys (None removes one)."""
    assets = directory / "assets"
    if not (assets / "start.png").exists():
        write_png(assets / "start.png", seed=1)
        write_png(assets / "end.png", seed=2)
    top = {k: changes.pop(k) for k in ("seed", "fps", "resolution", "post", "output")
           if k in changes}
    shot = {
        "id": "s01", "prompt": "a lighthouse", "negative": "blurry", "duration": "3s",
        "camera": {"zoom": 0.1}, "image": "assets/start.png", "end_image": "assets/end.png",
    }
    if "shot_seed" in changes:
        shot["seed"] = changes.pop("shot_seed")
    shot.update(changes)
    shot = {k: v for k, v in shot.items() if v is not None}
    return write_board(directory, [shot], **top)


def key_of(plan: RenderPlan) -> str:
    return next(plan.segments()).key


def test_keys_are_stable_across_builds(tmp_path):
    path = dag_board(tmp_path)
    one, two = plan_from(path), plan_from(path)
    assert keys(one) == keys(two)
    assert shot_keys(one) == shot_keys(two)
    assert one.key == two.key
    all_keys = list(keys(one).values())
    assert len(set(all_keys)) == len(all_keys)
    assert all(len(k) == 64 and int(k, 16) >= 0 for k in all_keys)


def test_keys_survive_moving_the_storyboard(tmp_path):
    here = tmp_path / "here"
    dag_board(here)
    key_board(here / "other")
    there = tmp_path / "somewhere" / "else"
    shutil.copytree(here, there)
    for sub in ("", "other"):
        a, b = plan_from(here / sub / "ep.yaml"), plan_from(there / sub / "ep.yaml")
        assert keys(a) == keys(b)
        assert shot_keys(a) == shot_keys(b)
        assert a.key == b.key
        # The jobs themselves point at the copy's files.
        starts = [j.start.image for j in b.segments() if j.start.image is not None]
        assert starts and all(str(p).startswith(str(there.resolve())) for p in starts)


@pytest.mark.parametrize("change", [
    {"prompt": "a lighthouse at night"},
    {"negative": "grainy"},
    {"negative": None},
    {"seed": 77},  # base seed: the shot's seed is derived from it
    {"fps": 24},
    {"resolution": "256x160"},
    {"duration": "4s"},
    {"camera": {"zoom": 0.2}},
    {"camera": {"zoom": 0.1, "ease": "in"}},
    {"camera": {"zoom": 0.1, "pan_x": 0.01}},
    {"camera": None},
    {"image": None},
    {"end_image": None},
    {"end_image": "assets/start.png"},
    {"image": "assets/end.png"},
])
def test_key_changes_with_every_input(tmp_path, change):
    base = key_of(plan_from(key_board(tmp_path / "base")))
    changed = key_of(plan_from(key_board(tmp_path / "changed", **change)))
    assert changed != base


def test_key_changes_with_explicit_seed(tmp_path):
    base = plan_from(key_board(tmp_path / "base"))
    derived = next(base.segments()).seed
    assert derived == derive_seed(1234, "s01", 0)
    other = plan_from(key_board(tmp_path / "other", shot_seed=derived + 1))
    assert next(other.segments()).seed == derived + 1
    assert key_of(other) != key_of(base)
    # The derived seed written out explicitly is the same segment.
    same = plan_from(key_board(tmp_path / "same", shot_seed=derived))
    assert key_of(same) == key_of(base)


def test_key_changes_with_fps_alone(tmp_path):
    # With frames fixed, only the fps differs (the camera path is the same fraction per frame).
    a = plan_from(key_board(tmp_path / "a", duration=None, frames=33))
    b = plan_from(key_board(tmp_path / "b", duration=None, frames=33, fps=24))
    ja, jb = next(a.segments()), next(b.segments())
    assert ja.frames == jb.frames == 33 and (ja.fps, jb.fps) == (16, 24)
    flat_a = [v for c in ja.camera for v in c.as_tuple()]
    flat_b = [v for c in jb.camera for v in c.as_tuple()]
    assert flat_a == pytest.approx(flat_b, abs=1e-12)
    assert ja.key != jb.key


def test_key_ignores_durations_that_snap_to_the_same_frames(tmp_path):
    a = plan_from(key_board(tmp_path / "a", duration="3s"))
    b = plan_from(key_board(tmp_path / "b", duration=None, frames=49))
    assert key_of(a) == key_of(b)


def test_key_follows_start_image_bytes_not_name(tmp_path):
    base = key_of(plan_from(key_board(tmp_path / "base")))

    renamed_dir = tmp_path / "renamed"
    key_board(renamed_dir)
    (renamed_dir / "assets" / "start.png").rename(renamed_dir / "assets" / "first.png")
    renamed = key_of(plan_from(key_board(renamed_dir, image="assets/first.png")))
    assert renamed == base

    pixel_dir = tmp_path / "pixel"
    key_board(pixel_dir)
    change_one_pixel(pixel_dir / "assets" / "start.png")
    assert key_of(plan_from(key_board(pixel_dir))) != base


def test_key_follows_end_image_bytes_not_name(tmp_path):
    base = key_of(plan_from(key_board(tmp_path / "base")))

    renamed_dir = tmp_path / "renamed"
    key_board(renamed_dir)
    (renamed_dir / "assets" / "end.png").rename(renamed_dir / "assets" / "last.png")
    assert key_of(plan_from(key_board(renamed_dir, end_image="assets/last.png"))) == base

    pixel_dir = tmp_path / "pixel"
    key_board(pixel_dir)
    change_one_pixel(pixel_dir / "assets" / "end.png")
    assert key_of(plan_from(key_board(pixel_dir))) != base


def test_key_changes_with_engine_identity_and_params(tmp_path):
    path = key_board(tmp_path)
    base = key_of(plan_from(path))
    assert key_of(plan_from(path, engine={"engine": "preview", "revision": "y"})) != base
    assert key_of(plan_from(path, engine={"engine": "wan", "revision": "x"})) != base
    assert key_of(plan_from(path, params={"motion": 0.5})) != base
    assert key_of(plan_from(path, params={"motion": 1.0, "caption": False})) != base
    assert key_of(plan_from(path, params={"motion": 1.0})) == base


def edit_board(directory: Path, prompts: dict[tuple[str, int], str] | None = None) -> Path:
    prompts = prompts or {}

    def p(shot: str, index: int = 0) -> str:
        return prompts.get((shot, index), f"{shot} {index}")

    return write_board(directory, [
        {"id": "s01", "prompt": p("s01"), "duration": "2s"},
        {"id": "s02", "segments": [{"prompt": p("s02", i), "duration": "2s"} for i in range(3)]},
        {"id": "s03", "prompt": p("s03"), "duration": "12s", "start": "chain"},
        {"id": "s04", "prompt": p("s04"), "duration": "2s"},
        {"id": "s05", "prompt": p("s05"), "duration": "2s", "start": "chain"},
    ])


def changed_keys(a: RenderPlan, b: RenderPlan) -> set[tuple[str, int]]:
    ka, kb = keys(a), keys(b)
    assert ka.keys() == kb.keys()
    return {k for k in ka if ka[k] != kb[k]}


def test_edit_reaches_exactly_the_segments_that_chain_from_it(tmp_path):
    base = plan_from(edit_board(tmp_path / "base"))
    edited = plan_from(edit_board(tmp_path / "edited", {("s02", 0): "something else"}))
    assert changed_keys(base, edited) == {
        ("s02", 0), ("s02", 1), ("s02", 2),  # the shot from the edit on
        ("s03", 0), ("s03", 1), ("s03", 2),  # the chain shot that follows (split in three)
    }
    a, b = shot_keys(base), shot_keys(edited)
    assert {s for s in a if a[s] != b[s]} == {"s02", "s03"}
    assert base.key != edited.key


def test_edit_of_a_later_segment_leaves_earlier_ones(tmp_path):
    base = plan_from(edit_board(tmp_path / "base"))
    edited = plan_from(edit_board(tmp_path / "edited", {("s02", 2): "something else"}))
    assert changed_keys(base, edited) == {("s02", 2), ("s03", 0), ("s03", 1), ("s03", 2)}


def test_edit_of_an_independent_shot_stays_in_it(tmp_path):
    base = plan_from(edit_board(tmp_path / "base"))
    edited = plan_from(edit_board(tmp_path / "edited", {("s01", 0): "something else"}))
    assert changed_keys(base, edited) == {("s01", 0)}
    edited = plan_from(edit_board(tmp_path / "edited2", {("s04", 0): "something else"}))
    assert changed_keys(base, edited) == {("s04", 0), ("s05", 0)}


def test_shot_keys_follow_the_post_chain(tmp_path):
    none = plan_from(key_board(tmp_path / "a"))
    x2 = plan_from(key_board(tmp_path / "b", post=[{"stage": "interpolate", "factor": 2}]))
    x4 = plan_from(key_board(tmp_path / "c", post=[{"stage": "interpolate", "factor": 4}]))
    fast = plan_from(key_board(tmp_path / "d", post=[{"stage": "interpolate", "factor": 2,
                                                      "quality": "fast"}]))
    assert keys(none) == keys(x2) == keys(x4) == keys(fast)  # segments do not see post
    shot = [p.shots[0].key for p in (none, x2, x4, fast)]
    assert len(set(shot)) == 4
    assert len({p.key for p in (none, x2, x4, fast)}) == 4
    assert x2.shots[0].post_frames == (x2.shots[0].frames - 1) * 2 + 1
    assert x2.post_fps == 32 and x4.post_fps == 64


def test_shot_key_follows_its_segments(tmp_path):
    a = plan_from(key_board(tmp_path / "a"))
    b = plan_from(key_board(tmp_path / "b", prompt="other"))
    assert a.shots[0].key != b.shots[0].key


def test_episode_key_follows_output_settings(tmp_path):
    base = plan_from(key_board(tmp_path / "a"))
    for i, output in enumerate([{"crf": 20}, {"codec": "h265"}, {"fps": 30},
                                {"preset": "slow"}]):
        other = plan_from(key_board(tmp_path / f"o{i}", output=output))
        assert keys(other) == keys(base)
        assert shot_keys(other) == shot_keys(base)
        assert other.key != base.key, output
    same = plan_from(key_board(tmp_path / "same", output={"crf": 18}))
    assert same.key == base.key


def test_episode_key_follows_transitions(tmp_path):
    shots = [{"id": "s01", "prompt": "a", "duration": "1s"},
             {"id": "s02", "prompt": "b", "duration": "1s"}]
    base = plan_of(tmp_path, shots)
    faded = plan_of(tmp_path, [{**shots[0], "transition": {"type": "crossfade"}}, shots[1]])
    assert keys(base) == keys(faded)
    assert base.key != faded.key


def test_params_are_copied_into_jobs(tmp_path):
    params = {"motion": 0.5}
    vs = validate_storyboard(key_board(tmp_path), PREVIEW_SPEC, ValidateOptions())
    plan = build_plan(vs, ENGINE, params)
    params["motion"] = 2.0
    assert next(plan.segments()).params == {"motion": 0.5}
    assert plan.engine == ENGINE


def test_labels_are_in_keys_only_for_engines_that_draw_them(tmp_path):
    import dataclasses

    twins = [{"id": "x", "prompt": "same", "duration": "1s", "seed": 3},
             {"id": "y", "prompt": "same", "duration": "1s", "seed": 3}]
    path = write_board(tmp_path / "twins", twins)
    # The preview draws the shot id on its scene card: identical inputs, different pixels.
    preview = keys(plan_from(path))
    assert preview[("x", 0)] != preview[("y", 0)]
    plain_spec = dataclasses.replace(PREVIEW_SPEC, draws_labels=False)
    vs = validate_storyboard(path, plain_spec, ValidateOptions())
    plain = keys(build_plan(vs, dict(ENGINE), dict(PARAMS)))
    assert plain[("x", 0)] == plain[("y", 0)]

"""Planning of chain modes (last_frame, overlap, latent, svi), colour matching and timecoded
prompt schedules: frames, leads, keys, anchors and the snapping notes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from engine.preview import PREVIEW_SPEC
from stages.storyboard.problems import StoryboardInvalid
from stages.plan.build import build_plan
from stages.storyboard.validate import ValidateOptions, validate_storyboard
from tests.helpers.boards import ENGINE, PARAMS, plan_of, shot_jobs, write_board

# An engine that can hand over latents (the Wan I2V family declares the same).
LATENT_SPEC = replace(PREVIEW_SPEC, name="latent_capable",
                      chain_modes=frozenset({"last_frame", "overlap", "latent", "svi"}))


def long_shot(chain=None, **extra):
    shot = {"id": "s01", "prompt": "a", "duration": "12s", **extra}
    if chain is not None:
        shot["chain"] = chain
    return [shot]


def test_default_chain_is_last_frame_with_one_shared_frame(tmp_path):
    jobs = shot_jobs(plan_of(tmp_path, long_shot()), "s01")
    assert [j.chain.mode for j in jobs] == ["last_frame"] * len(jobs)
    assert [j.chain.lead for j in jobs] == [0] + [1] * (len(jobs) - 1)
    assert [j.chain.color_match for j in jobs] == ["none"] + ["anchor"] * (len(jobs) - 1)


def test_overlap_segments_share_the_overlap_and_keep_the_shot_length(tmp_path):
    plain = plan_of(tmp_path, long_shot())
    plan = plan_of(tmp_path, long_shot({"mode": "overlap", "overlap": 16}))
    jobs = shot_jobs(plan, "s01")
    # Each piece adds only `frames - 16` new frames: more frames are generated for 12 s.
    assert sum(j.frames for j in jobs) > sum(j.frames for j in shot_jobs(plain, "s01"))
    assert [j.chain.lead for j in jobs][1:] == [16] * (len(jobs) - 1)
    assert all(j.chain.blend == 16 and j.chain.context == 16 for j in jobs[1:])
    # About 12 s either way, within one frame-rule step per piece.
    assert abs(plan.shots[0].frames - 12 * 16) <= 4 * len(jobs)
    # Camera time: a piece's first frame sits `overlap` frames before its upstream's end.
    for up, job in zip(jobs, jobs[1:]):
        assert job.start_time == pytest.approx(up.start_time + (up.frames - 16) / 16)
    assert plan.shots[0].overlap.overlap == 16


def test_overlap_presets_fill_unset_values(tmp_path):
    plan = plan_of(tmp_path, long_shot({"mode": "overlap", "preset": "fast_motion",
                                        "blend": 0.5}))
    params = plan.shots[0].overlap
    from stages.render.overlap_join import PRESETS

    assert params.blend == 0.5
    assert params.overlap == PRESETS["fast_motion"].overlap
    assert params.motion_weight == PRESETS["fast_motion"].motion_weight


def test_overlap_params_change_the_shot_key_not_the_segment_keys(tmp_path):
    a = plan_of(tmp_path, long_shot({"mode": "overlap", "blend": 0.8}))
    b = plan_of(tmp_path, long_shot({"mode": "overlap", "blend": 0.5}))
    assert [j.key for j in shot_jobs(a, "s01")] == [j.key for j in shot_jobs(b, "s01")]
    assert a.shots[0].key != b.shots[0].key


def test_color_match_is_in_the_key_of_chained_segments_only(tmp_path):
    a = shot_jobs(plan_of(tmp_path, long_shot({"color_match": "anchor"})), "s01")
    b = shot_jobs(plan_of(tmp_path, long_shot({"color_match": "none"})), "s01")
    assert a[0].key == b[0].key  # the first segment is the anchor's own clip
    assert all(x.key != y.key for x, y in zip(a[1:], b[1:]))


def test_anchor_defaults_to_the_start_image_or_the_first_frame(tmp_path):
    image = tmp_path / "img" / "start.png"
    image.parent.mkdir()
    Image.fromarray(np.zeros((144, 256, 3), np.uint8)).save(image)
    jobs = shot_jobs(plan_of(tmp_path, long_shot()), "s01")
    assert jobs[1].anchor.kind == "first_frame" and jobs[1].anchor.segment == jobs[0].ref
    board = write_board(tmp_path / "img", long_shot(image="start.png"))
    jobs = shot_jobs(build_plan(validate_storyboard(board, PREVIEW_SPEC, ValidateOptions()),
                                ENGINE, PARAMS), "s01")
    assert jobs[1].anchor.kind == "image" and jobs[1].anchor.image == image.resolve()
    chained = plan_of(tmp_path, [{"id": "s00", "prompt": "x", "duration": "2s"},
                                 {**long_shot()[0], "start": "chain"}])
    jobs = shot_jobs(chained, "s01")
    assert jobs[1].anchor.kind == "last_frame"
    assert jobs[1].anchor.segment == shot_jobs(chained, "s00")[-1].ref


def plan_latent(tmp_path, chain):
    board = write_board(tmp_path / f"b{abs(hash(str(chain)))}", long_shot(chain))
    vs = validate_storyboard(board, LATENT_SPEC, ValidateOptions())
    return build_plan(vs, ENGINE, PARAMS)


def test_svi_segments_drop_the_anchor_and_the_motion_frames(tmp_path):
    jobs = shot_jobs(plan_latent(tmp_path, {"mode": "svi", "motion_latents": 1}), "s01")
    first, rest = jobs[0], jobs[1:]
    assert first.chain.conditioning == "pixels" and first.chain.keep_latents == 1
    assert all(j.chain.conditioning == "svi" and j.chain.lead == 1 + 4 for j in rest)
    assert all(j.chain.motion_latents == 1 for j in rest)
    zero = shot_jobs(plan_latent(tmp_path, {"mode": "svi", "motion_latents": 0}), "s01")
    assert all(j.chain.lead == 1 and j.chain.motion_latents == 0 for j in zero[1:])


def test_latent_mode_hands_over_one_latent_frame(tmp_path):
    jobs = shot_jobs(plan_latent(tmp_path, "latent"), "s01")
    assert [j.chain.conditioning for j in jobs] == ["pixels"] + ["latent"] * (len(jobs) - 1)
    assert all(j.chain.keep_latents == 1 and j.chain.lead in (0, 1) for j in jobs)


def test_engine_without_latent_handover_rejects_latent_and_svi(tmp_path):
    for mode in ("latent", "svi"):
        board = write_board(tmp_path / mode, long_shot({"mode": mode}))
        with pytest.raises(StoryboardInvalid) as err:
            validate_storyboard(board, PREVIEW_SPEC, ValidateOptions())
        text = str(err.value)
        assert "shots[0].chain.mode" in text and "wan22_i2v_a14b" in text and mode in text


def test_bad_overlap_values_name_the_key_and_range(tmp_path):
    board = write_board(tmp_path, long_shot({"mode": "overlap", "overlap": 40,
                                             "motion_weight": 0.9}))
    with pytest.raises(StoryboardInvalid) as err:
        validate_storyboard(board, PREVIEW_SPEC, ValidateOptions())
    text = str(err.value)
    assert "shots[0].chain.overlap" in text and "24" in text
    assert "shots[0].chain.motion_weight" in text


def test_prompt_schedule_snaps_to_segment_boundaries_and_is_reported(tmp_path):
    plan = plan_of(tmp_path, [{"id": "s01", "duration": "12s",
                               "prompts": {"0s": "dawn", "4s": "noon", "9s": "dusk"}}])
    jobs = shot_jobs(plan, "s01")
    starts = [0.0] + [(j.start_time * 16 + j.chain.lead) / 16 for j in jobs[1:]]
    assert jobs[0].prompt == "dawn" and jobs[0].prompt_from == 0.0
    nearest4 = min(range(len(starts)), key=lambda i: abs(starts[i] - 4.0))
    assert jobs[nearest4].prompt == "noon" and jobs[nearest4].prompt_from == 4.0
    assert jobs[nearest4 - 1].prompt == "dawn"
    nearest9 = min(range(len(starts)), key=lambda i: abs(starts[i] - 9.0))
    assert [j.prompt for j in jobs[nearest9:]] == ["dusk"] * (len(jobs) - nearest9)
    notes = "\n".join(plan.notes)
    assert "prompt at 4s starts at segment" in notes and "snapped from 4s" in notes
    assert "prompt at 0s starts at segment 0 (0.00s, exact)" in notes


def test_segment_prompts_win_over_the_schedule(tmp_path):
    plan = plan_of(tmp_path, [{"id": "s01", "prompts": {"0s": "scheduled"},
                               "segments": [{"duration": "2s"},
                                            {"duration": "2s", "prompt": "own"}]}])
    assert [j.prompt for j in shot_jobs(plan, "s01")] == ["scheduled", "own"]


def test_prompt_schedule_errors(tmp_path):
    board = write_board(tmp_path, [{"id": "s01", "duration": "4s",
                                    "prompts": {"1s": "late", "6s": "past"}}])
    with pytest.raises(StoryboardInvalid) as err:
        validate_storyboard(board, PREVIEW_SPEC, ValidateOptions())
    text = str(err.value)
    assert "past the end of the shot (4s)" in text
    assert "shots[0].prompt" in text and "schedule entry at 0s" in text
    bad = write_board(tmp_path / "bad", [{"id": "s01", "duration": "4s",
                                          "prompts": {"soon": "x"}}])
    with pytest.raises(StoryboardInvalid) as err:
        validate_storyboard(bad, PREVIEW_SPEC, ValidateOptions())
    assert "soon" in str(err.value)


def test_missing_anchor_image_is_reported_where_it_is_set(tmp_path):
    board = write_board(tmp_path, long_shot({"mode": "last_frame", "anchor": "nope.png"}),
                        defaults={"chain": {"anchor": "gone.png"}})
    with pytest.raises(StoryboardInvalid) as err:
        validate_storyboard(board, PREVIEW_SPEC, ValidateOptions())
    text = str(err.value)
    assert "shots[0].chain.anchor" in text and "'nope.png' not found" in text
    assert "defaults.chain.anchor" in text and "'gone.png' not found" in text

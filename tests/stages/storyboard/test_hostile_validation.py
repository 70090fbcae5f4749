"""Storyboards that used to pass validation and then crash or lose data (issue 12): ids with a
trailing newline, ids that collide with generated clips, transitions longer than the shots they
join, post chains that grow past what can be encoded, control characters, YAML merge keys,
huge files, and config values a dry run used to let through. Each is now a validation problem
(exit 2, nothing written) naming the key; the legal cases still pass."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from engine.preview import PREVIEW_SPEC
from flows.render import EXIT_INVALID, EXIT_OK, run
from flows.config.settings import RenderSettings
from stages.storyboard.problems import StoryboardInvalid
from stages.storyboard.validate import ValidateOptions, validate_storyboard
from stages.storyboard.yaml_source import MAX_FILE_BYTES
from flows.config.settings import post_presets


def board(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "board.yaml"
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def problems(path: Path, **options) -> list[str]:
    opts = ValidateOptions(post_presets=post_presets(), **options)
    try:
        validate_storyboard(path, PREVIEW_SPEC, opts)
    except StoryboardInvalid as exc:
        return [f"{p.key_path}: {p.message}" for p in exc.problems]
    return []


# (name, storyboard text, a fragment every listed problem set must contain)
HOSTILE = [
    ("id_with_trailing_newline", """
        shots:
          - id: |
              s01
            prompt: a
            duration: 1s
        """, "shots[0].id: 's01\\n' is not a valid shot id"),
    ("id_collides_with_generated_clip", """
        shots:
          - {id: a, prompt: x, duration: 1s, transition: {type: generated, duration: 1s}}
          - {id: b, prompt: y, duration: 1s}
          - {id: a__b, prompt: z, duration: 1s}
        """, "would be named 'a__b', which is also a shot id"),
    ("id_collides_with_a_subset_bridge", """
        shots:
          - {id: a, prompt: x, duration: 1s, transition: {type: generated, duration: 1s}}
          - {id: b, prompt: y, duration: 1s}
          - {id: a__c, prompt: z, duration: 1s}
          - {id: c, prompt: w, duration: 1s}
        """, "would be named 'a__c'"),
    ("crossfade_longer_than_next_shot", """
        shots:
          - {id: a, prompt: x, duration: 3s, transition: {type: crossfade, duration: 2s}}
          - {id: b, prompt: y, duration: 1s}
        """, "shots[0].transition.duration: a 2s crossfade is longer than shot b (1s)"),
    ("crossfade_longer_than_previous_shot", """
        shots:
          - {id: a, prompt: x, duration: 0.5s, transition: {type: interpolated, duration: 1s}}
          - {id: b, prompt: y, duration: 3s}
        """, "a 1s interpolated is longer than shot a (0.5s)"),
    ("two_blends_swallow_the_middle_shot", """
        defaults: {transition: {type: crossfade, duration: 0.8s}}
        shots:
          - {id: a, prompt: x, duration: 3s}
          - {id: b, prompt: y, duration: 1.5s}
          - {id: c, prompt: z, duration: 3s}
        """, "plus its other 0.8s blend is longer than shot b (1.5s)"),
    ("six_upscales_by_eight", """
        resolution: 256x144
        shots: [{id: a, prompt: x, duration: 1s}]
        post: [{stage: upscale, factor: 4}, {stage: upscale, factor: 4},
               {stage: upscale, factor: 4}]
        """, "post: the chain makes 16384x9216 frames from 256x144"),
    ("interpolation_past_240_fps", """
        fps: 16
        shots: [{id: a, prompt: x, duration: 1s}]
        post: [{stage: interpolate, factor: 8}, {stage: interpolate, factor: 8}]
        """, "post: the chain makes 1024 fps from 16"),
    ("nul_in_title", """
        title: "The \\0 Lighthouse"
        shots: [{id: a, prompt: x, duration: 1s}]
        """, "title: control character U+0000"),
    ("nul_in_image_path", """
        shots: [{id: a, prompt: x, duration: 1s, image: "ok\\0.png"}]
        """, "control character U+0000 at position 2 is not allowed in a path"),
    ("newline_in_image_path", """
        shots: [{id: a, prompt: x, duration: 1s, image: "ok\\n.png"}]
        """, "control character U+000A"),
    ("escape_char_in_prompt", """
        shots: [{id: a, prompt: "red \\e[31m text", duration: 1s}]
        """, "control character U+001B"),
    ("bell_in_negative", """
        defaults: {negative: "blurry\\a"}
        shots: [{id: a, prompt: x, duration: 1s}]
        """, "defaults.negative"),
    ("duplicate_explicit_key_after_merge", """
        base: &base {prompt: x, duration: 1s}
        shots:
          - <<: *base
            id: a
            id: b
        """, "duplicate key 'id'"),
    ("too_many_shots", "shots:\n" + "".join(
        f"  - {{id: s{i}, prompt: x, duration: 1s}}\n" for i in range(2001)),
        "shots: List should have at most 2000 items"),
]


@pytest.mark.parametrize("name, text, fragment", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_storyboard_is_a_validation_problem(tmp_path, name, text, fragment):
    found = problems(board(tmp_path, text))
    assert found, f"{name} passed validation"
    assert any(fragment in p for p in found), found


def test_merge_keys_follow_the_yaml_rules(tmp_path):
    """Explicit keys override merged ones, and an earlier merge beats a later one."""
    from stages.storyboard.yaml_source import parse_yaml

    text = textwrap.dedent("""
        a: &a {id: from_a, prompt: pa, duration: 1s}
        b: &b {id: from_b, prompt: pb, negative: nb}
        shot:
          <<: [*a, *b]
          id: explicit
    """)
    data = parse_yaml(text, tmp_path / "x.yaml").data
    assert data["shot"] == {"id": "explicit", "prompt": "pa", "duration": "1s", "negative": "nb"}
    path = board(tmp_path, """
        base: &base {prompt: keeper walks, duration: 1s}
        shots:
          - <<: *base
            id: s01
          - <<: *base
            id: s02
            prompt: keeper runs
        """)
    assert problems(path) == [] or all("base" in p for p in problems(path))


def test_legal_neighbours_still_pass(tmp_path):
    path = board(tmp_path, """
        title: "Two\\tlines\\nof title"
        shots:
          - {id: a, prompt: "line one\\nline two", duration: 2s,
             transition: {type: crossfade, duration: 1s}}
          - {id: b, prompt: y, duration: 1s, transition: {type: generated, duration: 1s}}
          - {id: c__d, prompt: z, duration: 2s}
        post: [{stage: interpolate, factor: 2}, {stage: upscale, factor: 2}]
        """)
    assert [p for p in problems(path) if "base" not in p] == []


def test_a_huge_file_is_refused_at_once_with_the_limit(tmp_path):
    shots = "".join(f"  - {{id: s{i}, prompt: \"a lighthouse at dusk {i}\", duration: 2s}}\n"
                    for i in range(50_000))
    path = tmp_path / "big.yaml"
    path.write_text("shots:\n" + shots)
    assert path.stat().st_size > MAX_FILE_BYTES
    started = time.perf_counter()
    found = problems(path)
    assert time.perf_counter() - started < 1.0
    assert found and "a storyboard may be at most 1 MB" in found[0]
    assert "alias" not in found[0]


def test_many_values_without_anchors_are_not_blamed_on_anchors(tmp_path):
    from stages.storyboard.yaml_source import YamlSyntaxError, parse_yaml

    text = "shots:\n" + "".join(f"  - [{', '.join(['1'] * 50)}]\n" for _ in range(2100))
    with pytest.raises(YamlSyntaxError) as info:
        parse_yaml(text, tmp_path / "x.yaml")
    message = str(info.value).split("YAML syntax error:")[1]
    assert "more than 100000 values" in message and "alias" not in message
    bomb = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcde", "bcdef"))
    with pytest.raises(YamlSyntaxError, match="YAML aliases"):
        parse_yaml(bomb, tmp_path / "y.yaml")


PLAIN = """
fps: 16
resolution: 64x64
shots: [{id: a, prompt: x, frames: 9}]
"""


@pytest.mark.parametrize("changes, fragment", [
    ({"output": {"crf": 99}}, "output.crf"),
    ({"engine": {"name": "preview", "params": {"motion": "abc"}}},
     "engine.params.motion='abc': must be a finite number >= 0"),
    ({"engine": {"name": "preview", "params": {"steps": "many"}}}, "engine.params.steps='many'"),
    ({"engine": {"name": "preview", "params": {},
                 "profiles": {"draft": {"params": {"cfg": -3}}}}},
     "engine.profiles.draft.params.cfg=-3"),
], ids=["crf", "preview_motion", "steps", "profile_cfg"])
def test_a_dry_run_makes_every_config_check_the_render_makes(tmp_path, capsys, changes,
                                                              fragment):
    """A config value overridden by the storyboard, or read only by the engine, used to pass
    the dry run and fail the render (segment after segment)."""
    path = tmp_path / "ep.yaml"
    path.write_text(PLAIN + "output: {crf: 20}\n")
    out = tmp_path / "renders"
    for dry_run in (True, False):
        settings = RenderSettings(storyboard=str(path), output_dir=str(out), post=[],
                                  dry_run=dry_run, **changes)
        assert run(settings) == EXIT_INVALID
        assert fragment in capsys.readouterr().err
    assert not out.exists()


def test_the_plain_config_still_dry_runs(tmp_path):
    path = tmp_path / "ep.yaml"
    path.write_text(PLAIN)
    assert run(RenderSettings(storyboard=str(path), output_dir=str(tmp_path / "r"), post=[],
                              dry_run=True)) == EXIT_OK


def test_a_bad_command_line_chain_is_blamed_on_the_command_line(tmp_path, capsys):
    path = tmp_path / "ep.yaml"
    path.write_text(PLAIN)
    settings = RenderSettings(storyboard=str(path), output_dir=str(tmp_path / "r"),
                              post=[{"stage": "upscale", "factor": 99}], post_override=True,
                              dry_run=True)
    assert run(settings) == EXIT_INVALID
    err = capsys.readouterr().err
    assert "command line: post:" in err and "ep.yaml" not in err.split("post:")[0]


def test_config_problems_are_listed_with_the_storyboards_in_one_run(tmp_path, capsys):
    """A bad storyboard and a bad engine config: both lists in one message, so one edit-run
    cycle fixes everything (they used to come one run after the other)."""
    path = tmp_path / "ep.yaml"
    path.write_text(PLAIN.replace("frames: 9", "frames: -9"))
    settings = RenderSettings(storyboard=str(path), output_dir=str(tmp_path / "r"), post=[],
                              dry_run=True, engine={"name": "preview", "params": {"motion": "x"}})
    assert run(settings) == EXIT_INVALID
    err = capsys.readouterr().err
    assert "1 problem in the storyboard:" in err and "shots[0].frames" in err
    assert "1 problem in the config and command line:" in err
    assert "engine.params.motion='x'" in err

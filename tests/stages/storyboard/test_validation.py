"""Bad storyboards: every one is rejected with the file, the key path, the line and a useful message.

Table-driven: each case is a storyboard written into tmp_path beside a few generated images, and
names the key path, a fragment of the message (the bad value or the hint) and the line the problem
must be reported at.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from PIL import Image

from engine.preview import PREVIEW_SPEC
from stages.storyboard.problems import Problem, StoryboardInvalid
from stages.storyboard.validate import ValidateOptions, ValidatedStoryboard, validate_storyboard
from tests.helpers.bad_inputs import CASES, Case, png_bytes, png_with_cut_pixel_data

PRESETS = {"interpolate2x": [{"stage": "interpolate", "factor": 2, "quality": "medium"}]}


def _options(**kwargs) -> ValidateOptions:
    return ValidateOptions(post_presets=PRESETS, **kwargs)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """tmp_path with ok.png (valid), truncated.png (file cut short), cut_pixels.png (intact
    chunks, cut pixel data) and text.png (not an image)."""
    data = png_bytes()
    (tmp_path / "ok.png").write_bytes(data)
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "cut_pixels.png").write_bytes(png_with_cut_pixel_data())
    (tmp_path / "text.png").write_text("this is not a picture\n", encoding="utf-8")
    return tmp_path


def write(folder: Path, text: str, name: str = "board.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems_of(path: Path, **options) -> list[Problem]:
    with pytest.raises(StoryboardInvalid) as info:
        validate_storyboard(path, PREVIEW_SPEC, _options(**options))
    problems = info.value.problems
    assert problems, "StoryboardInvalid must carry at least one problem"
    return problems


def find(problems: list[Problem], key_path: str) -> Problem:
    matches = [p for p in problems if p.key_path == key_path]
    assert matches, f"no problem at {key_path!r}; got: " + "; ".join(map(str, problems))
    return matches[0]


def test_case_ids_are_unique_and_plenty():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_storyboard(folder: Path, case: Case):
    path = write(folder, case.yaml)
    problems = problems_of(path)
    problem = find(problems, case.key_path)
    assert case.fragment in problem.message, str(problem)
    assert problem.line == case.line, str(problem)
    assert problem.file == str(path)
    assert len(problems) == case.count, "\n".join(map(str, problems))
    # What the user reads: file:line: key path: message.
    where = f"{path}:{case.line}" if case.line is not None else str(path)
    assert str(problem) == f"{where}: {case.key_path}: {problem.message}"


def test_exception_text_lists_every_problem(folder: Path):
    path = write(folder, """
        shots:
          - {id: a, prompt: x, duration: 5 seconds}
          - {id: b, prompt: x, duration: 1s, camera: {zoom: 50}}
        """)
    with pytest.raises(StoryboardInvalid) as info:
        validate_storyboard(path, PREVIEW_SPEC, _options())
    text = str(info.value)
    assert text.startswith("2 problems in the storyboard:")
    assert f"{path}:2: shots[0].duration: '5 seconds' is not a duration" in text
    assert f"{path}:3: shots[1].camera.zoom: zoom=50.0 is out of range" in text


def test_many_schema_problems_are_reported_at_once(folder: Path):
    path = write(folder, """
        shots:
          - {id: a, prompt: x, duration: 5 seconds}
          - {id: b, prompt: x, duration: 1s, camera: {zoom: 50}}
          - {id: c, promt: x, duration: 1s}
        """)
    problems = problems_of(path)
    assert [(p.key_path, p.line) for p in problems] == [
        ("shots[0].duration", 2), ("shots[1].camera.zoom", 3), ("shots[2].promt", 4),
    ]


def test_many_cross_field_problems_are_reported_at_once(folder: Path):
    path = write(folder, """
        shots:
          - {id: a, prompt: x, duration: 1s, start: chain}
          - {id: b, prompt: x, duration: 1s, image: missing.png}
          - {id: c, duration: 1s}
          - {id: a, prompt: x, duration: 1s}
        """)
    problems = problems_of(path)
    assert sorted(p.key_path for p in problems) == [
        "shots[0].start", "shots[1].image", "shots[2].prompt", "shots[3].id",
    ]


def test_schema_and_cross_field_problems_are_reported_together(folder: Path):
    """A typo in one shot must not hide a missing image in another until the next run."""
    path = write(folder, """
        resolutoin: 832x480
        shots:
          - {id: a, prompt: x, duration: 5 seconds}
          - {id: b, prompt: x, duration: 1s, image: missing.png}
          - {id: c, duration: 1s}
        """)
    problems = problems_of(path)
    assert sorted(p.key_path for p in problems) == [
        "resolutoin", "shots[0].duration", "shots[1].image", "shots[2].prompt",
    ]


def test_union_branches_do_not_add_noise(folder: Path):
    """A bad camera value is one problem at its own key, not also 'should be a valid list'."""
    path = write(folder, """
        shots:
          - {id: a, prompt: x, duration: 1s, camera: {zoom: 50}}
          - id: b
            prompt: x
            duration: 2s
            camera:
              - {at: 0s, zoom: 0.0}
              - {at: 1s, ease: bounce}
        """)
    problems = problems_of(path)
    assert [p.key_path for p in problems] == ["shots[0].camera.zoom", "shots[1].camera[1].ease"]
    assert not any("expected a list" in p.message or "expected a mapping" in p.message
                   or "valid list" in p.message for p in problems)


def test_unknown_shot_in_options(folder: Path):
    path = write(folder, """
        shots:
          - {id: intro, prompt: x, duration: 1s}
          - {id: outro, prompt: y, duration: 1s}
        """)
    problems = problems_of(path, shots=["intro", "outr"])
    assert len(problems) == 1
    problem = find(problems, "shots")
    assert "no shot 'outr'" in problem.message
    assert "did you mean 'outro'?" in problem.message
    assert problem.line is None


def test_options_fps_override_is_used_for_frame_lengths(folder: Path):
    # 32 frames at the storyboard's 16 fps is 2 s; at fps=32 from the command line it is 1 s,
    # so a keyframe at 1.5 s falls past the end.
    path = write(folder, """
        fps: 16
        shots:
          - id: a
            prompt: x
            frames: 32
            camera:
              - {at: 0s, zoom: 0.0}
              - {at: 1.5s, zoom: 0.2}
        """)
    validate_storyboard(path, PREVIEW_SPEC, _options())
    problem = find(problems_of(path, fps=32), "shots[0].camera[1].at")
    assert "past the end of the shot (1s)" in problem.message


# --- valid storyboards -----------------------------------------------------------------------------

VALID = """
    title: The Lighthouse
    fps: 16
    resolution: 256x144
    seed: 1234
    defaults:
      negative: "blurry, low quality"
      duration: 2s
    shots:
      - id: s01
        prompt: "A lighthouse at dusk, ${not.a.variable} and $HOME"
        camera: {zoom: 0.1}
      - id: s02
        start: chain
        segments:
          - {prompt: "The keeper climbs", duration: 1s}
          - {prompt: "He lights the lamp", frames: 17, end_image: ok.png}
        camera:
          - {at: 0s, pan_x: 0.0}
          - {at: 2s, pan_x: 0.2, ease: in_out}
        transition: {type: crossfade, duration: 0.5s}
      - id: s03
        image: ok.png
        end_image: ok.png
        prompt: "The beam sweeps the sea"
        duration: 500ms
    post: [interpolate2x]
    output: {fps: 32, codec: h264, crf: 18}
    """


def test_valid_storyboard_passes(folder: Path):
    path = write(folder, VALID)
    result = validate_storyboard(path, PREVIEW_SPEC, _options())
    assert isinstance(result, ValidatedStoryboard)
    assert result.selected == ["s01", "s02", "s03"]
    assert (result.width, result.height, result.fps) == (256, 144, 16)
    assert [s.stage for s in result.post] == ["interpolate"]
    assert result.output.crf == 18
    assert result.name == "board"


def test_interpolation_syntax_reaches_the_model_verbatim(folder: Path):
    path = write(folder, VALID)
    result = validate_storyboard(path, PREVIEW_SPEC, _options())
    assert result.shot("s01").prompt == "A lighthouse at dusk, ${not.a.variable} and $HOME"


def test_defaults_are_inherited(folder: Path):
    path = write(folder, VALID)
    result = validate_storyboard(path, PREVIEW_SPEC, _options())
    # s01 has no duration of its own: defaults.duration (2s) makes it valid.
    assert result.shot("s01").duration is None
    assert result.model.defaults.duration == 2.0
    # The same storyboard without the default is missing a duration exactly there.
    path = write(folder, VALID.replace("      duration: 2s\n", ""), name="nodefault.yaml")
    problems = problems_of(path)
    assert [p.key_path for p in problems] == ["shots[0].duration"]


def test_prompt_inherited_from_defaults(folder: Path):
    path = write(folder, """
        defaults: {prompt: "the same prompt everywhere", frames: 17}
        shots:
          - {id: a}
          - id: b
            segments: [{duration: 1s}, {prompt: own}]
        """)
    result = validate_storyboard(path, PREVIEW_SPEC, _options())
    assert result.selected == ["a", "b"]


def test_valid_storyboard_selects_shots(folder: Path):
    path = write(folder, VALID)
    result = validate_storyboard(path, PREVIEW_SPEC, _options(shots=["s03", "s01"]))
    assert result.selected == ["s01", "s03"]  # storyboard order, not command-line order


def test_options_post_override_and_default_output(folder: Path):
    path = write(folder, VALID)
    result = validate_storyboard(
        path, PREVIEW_SPEC,
        _options(default_post=[], post_override=True, default_output={"crf": 30, "preset": "slow"}),
    )
    assert result.post == []
    assert result.output.crf == 18  # the storyboard's value wins over the config's
    assert result.output.preset == "slow"


def test_bad_default_output_from_config_is_reported(folder: Path):
    path = write(folder, """
        shots:
          - {id: a, prompt: x, duration: 1s}
        """)
    problems = problems_of(path, default_output={"crf": 77})
    problem = find(problems, "output.crf")
    assert problem.file == "config"
    assert "77" in problem.message


def test_missing_file_is_a_problem_not_a_crash(tmp_path: Path):
    with pytest.raises(StoryboardInvalid) as info:
        validate_storyboard(tmp_path / "nope.yaml", PREVIEW_SPEC, _options())
    assert info.value.problems[0].key_path == "<file>"


def test_not_utf8_is_a_problem_not_a_crash(tmp_path: Path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("shots:\n  - {id: a, prompt: caf\xe9, duration: 1s}\n".encode("latin-1"))
    problems = problems_of(path)
    assert problems[0].key_path == "<yaml>"
    assert "UTF-8" in problems[0].message


def test_generated_images_are_what_the_cases_assume(folder: Path):
    """Guard the fixtures: if ok.png were unreadable, the image cases would pass for nothing."""
    with Image.open(folder / "ok.png") as img:
        img.load()
        assert img.size == (64, 48)
    for name in ("truncated.png", "cut_pixels.png"):
        with pytest.raises(OSError):
            with Image.open(folder / name) as img:
                img.load()
    with Image.open(folder / "cut_pixels.png") as img:
        img.verify()  # passes: only decoding finds this truncation


def test_wrong_shapes_get_plain_messages(folder: Path):
    path = write(folder, """
        shots:
          - {id: a, prompt: x, duration: 1s, camera: 5}
          - {id: b, prompt: x, duration: 1s, transition: [crossfade]}
        post: interpolate2x
        """)
    messages = {p.key_path: p.message for p in problems_of(path)}
    assert "list of keyframes" in messages["shots[0].camera"] and "5" in messages["shots[0].camera"]
    assert "expected a mapping" in messages["shots[1].transition"]
    assert "[interpolate2x]" in messages["post"]

"""Bad storyboards: every one is rejected with the file, the key path, the line and a useful message.

Table-driven: each case is a storyboard written into tmp_path beside a few generated images, and
names the key path, a fragment of the message (the bad value or the hint) and the line the problem
must be reported at.
"""

from __future__ import annotations

import io
import struct
import textwrap
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.preview import PREVIEW_SPEC
from stages.storyboard.problems import Problem, StoryboardInvalid
from stages.storyboard.validate import ValidateOptions, ValidatedStoryboard, validate_storyboard

PRESETS = {"interpolate2x": [{"stage": "interpolate", "factor": 2, "quality": "medium"}]}


def _options(**kwargs) -> ValidateOptions:
    return ValidateOptions(post_presets=PRESETS, **kwargs)


def _png_bytes(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)  # noise: no compression
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _png_with_cut_pixel_data(width: int = 64, height: int = 48) -> bytes:
    """A PNG whose chunks are all well formed (valid CRCs, IEND) but whose compressed pixel data
    stops halfway: Image.verify() accepts it, only decoding the pixels finds the truncation."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = np.random.default_rng(1).integers(0, 256, size=(height, width * 3), dtype=np.uint8)
    compressed = zlib.compress(b"".join(b"\x00" + row.tobytes() for row in rows))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", compressed[: len(compressed) // 2])
            + chunk(b"IEND", b""))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """tmp_path with ok.png (valid), truncated.png (file cut short), cut_pixels.png (intact
    chunks, cut pixel data) and text.png (not an image)."""
    data = _png_bytes()
    (tmp_path / "ok.png").write_bytes(data)
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "cut_pixels.png").write_bytes(_png_with_cut_pixel_data())
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


@dataclass(frozen=True)
class Case:
    id: str
    yaml: str
    key_path: str
    fragment: str  # must occur in the message
    line: int | None  # the line the problem is reported at (None: YAML gives none)
    count: int = 1  # how many problems the file has in total (catches noise and duplicates)


SHOT = "{id: a, prompt: x, duration: 1s}"

CASES = [
    # --- the file itself -----------------------------------------------------------------------
    Case("yaml_syntax_error", """
        shots:
          - id: a
            prompt: x
             duration: 1s
        """, "<yaml>", "column 14: mapping values are not allowed here", 4),
    Case("yaml_unclosed_quote", """
        shots:
          - id: a
            prompt: "unclosed
            duration: 1s
          - id: b
            prompt: fine
            duration: 1s
        """, "<yaml>", "began at line 3", 8),
    Case("yaml_duplicate_key", """
        shots:
          - id: a
            prompt: x
            prompt: y
            duration: 1s
        """, "<yaml>", "duplicate key 'prompt'", 4),
    Case("top_level_list", """
        - id: a
        - id: b
        """, "<top level>", "a list, not a mapping", 1),
    Case("empty_file", "", "<top level>", "empty", 1),
    Case("only_comments", "# nothing yet\n", "<top level>", "empty", 1),
    Case("missing_shots", """
        title: Nothing
        fps: 16
        """, "shots", "required key is missing", 1),
    Case("empty_shots", """
        title: Nothing
        shots: []
        """, "shots", "must not be empty", 2),
    Case("shots_not_a_list", """
        shots:
          a: {prompt: x, duration: 1s}
        """, "shots", "expected a list", 1),
    # --- unknown keys ----------------------------------------------------------------------------
    Case("unknown_shot_key", """
        shots:
          - id: a
            promt: x
            duration: 1s
        """, "shots[0].promt", "unknown key 'promt'; did you mean 'prompt'?", 3),
    Case("unknown_top_key", f"""
        resolutoin: 832x480
        shots:
          - {SHOT}
        """, "resolutoin", "did you mean 'resolution'?", 1),
    Case("unknown_defaults_key", f"""
        defaults:
          negativ: blurry
        shots:
          - {SHOT}
        """, "defaults.negativ", "did you mean 'negative'?", 2),
    Case("unknown_segment_key", """
        shots:
          - id: a
            segments:
              - {prompt: x, duration: 1s}
              - {prompt: y, durration: 1s}
        """, "shots[0].segments[1].durration", "did you mean 'duration'?", 5),
    # --- types and values at the top -------------------------------------------------------------
    Case("fps_not_a_number", f"""
        fps: fast
        shots:
          - {SHOT}
        """, "fps", "'fast'", 1),
    Case("fps_zero", f"""
        fps: 0
        shots:
          - {SHOT}
        """, "fps", "must be >= 1", 1),
    Case("fps_absurd", f"""
        title: t
        fps: 1000
        shots:
          - {SHOT}
        """, "fps", "1000", 2),
    Case("seed_negative", f"""
        seed: -1
        shots:
          - {SHOT}
        """, "seed", "-1", 1),
    Case("seed_float", f"""
        seed: 1.5
        shots:
          - {SHOT}
        """, "seed", "1.5", 1),
    Case("seed_bool", f"""
        seed: yes
        shots:
          - {SHOT}
        """, "seed", "True", 1),
    Case("resolution_not_multiple_of_16", f"""
        resolution: 830x480
        shots:
          - {SHOT}
        """, "resolution", "not a multiple of 16", 1),
    Case("resolution_suggests_fix", f"""
        resolution: 830x470
        shots:
          - {SHOT}
        """, "resolution", "try 832x464", 1),
    Case("resolution_absurd", f"""
        resolution: 99999x480
        shots:
          - {SHOT}
        """, "resolution", "99999x480", 1),
    Case("resolution_malformed", f"""
        resolution: 832*480
        shots:
          - {SHOT}
        """, "resolution", "'832*480' is not a resolution", 1),
    # --- shots -----------------------------------------------------------------------------------
    Case("shot_id_invalid", """
        shots:
          - {id: "Shot 1", prompt: x, duration: 1s}
        """, "shots[0].id", "'Shot 1' is not a valid shot id", 2),
    Case("shot_id_missing", """
        shots:
          - {prompt: x, duration: 1s}
        """, "shots[0].id", "required", 2),
    Case("shot_ids_duplicate", """
        shots:
          - {id: a, prompt: x, duration: 1s}
          - {id: b, prompt: x, duration: 1s}
          - {id: a, prompt: y, duration: 1s}
        """, "shots[2].id", "duplicate shot id 'a' (first used by shots[0])", 4),
    Case("shot_not_a_mapping", f"""
        shots:
          - {SHOT}
          - just a string
        """, "shots[1]", "'just a string'", 3),
    Case("prompt_not_text", """
        shots:
          - {id: a, prompt: 123, duration: 1s}
        """, "shots[0].prompt", "123", 2),
    Case("prompt_missing", """
        shots:
          - id: a
            duration: 1s
        """, "shots[0].prompt", "required", 2),
    Case("prompt_missing_in_segment", """
        shots:
          - id: a
            segments:
              - {prompt: x, duration: 1s}
              - {duration: 1s}
        """, "shots[0].segments[1].prompt", "required", 5),
    # --- durations -------------------------------------------------------------------------------
    Case("duration_negative_in_segment", f"""
        shots:
          - {SHOT}
          - id: b
            segments:
              - {{prompt: x, duration: -2s}}
        """, "shots[1].segments[0].duration", "'-2s' must be longer than zero", 5),
    Case("duration_negative_number", """
        shots:
          - {id: a, prompt: x, duration: -3}
        """, "shots[0].duration", "-3 must be longer than zero", 2),
    Case("duration_zero", """
        shots:
          - {id: a, prompt: x, duration: 0s}
        """, "shots[0].duration", "'0s' must be longer than zero", 2),
    Case("duration_ten_hours", """
        shots:
          - id: a
            prompt: x
            duration: 36000s
        """, "shots[0].duration", "longer than the limit of 600s", 4),
    Case("duration_hours_unit", """
        shots:
          - {id: a, prompt: x, duration: 10h}
        """, "shots[0].duration", "'10h' is not a duration", 2),
    Case("duration_unparsable", """
        shots:
          - {id: a, prompt: x, duration: 5 seconds}
        """, "shots[0].duration", "'5 seconds' is not a duration; use seconds like '5s'", 2),
    Case("duration_and_frames", """
        shots:
          - id: a
            prompt: x
            duration: 1s
            frames: 17
        """, "shots[0].frames", "either duration or frames", 5),
    Case("frames_zero", """
        shots:
          - {id: a, prompt: x, frames: 0}
        """, "shots[0].frames", "must be >= 1", 2),
    Case("frames_fractional", """
        shots:
          - {id: a, prompt: x, frames: 16.5}
        """, "shots[0].frames", "16.5", 2),
    Case("segments_and_shot_duration", """
        shots:
          - id: a
            duration: 2s
            segments:
              - {prompt: x, duration: 1s}
              - {prompt: y, duration: 1s}
        """, "shots[0].duration", "move 'duration' onto each segment", 3),
    Case("duration_missing", """
        shots:
          - id: a
            prompt: x
        """, "shots[0].duration", "give a duration", 2),
    Case("duration_missing_in_segment", """
        shots:
          - id: a
            segments:
              - {prompt: x, duration: 1s}
              - {prompt: y}
        """, "shots[0].segments[1].duration", "give a duration", 5),
    Case("segments_empty", """
        shots:
          - {id: a, prompt: x, segments: []}
        """, "shots[0].segments", "must not be empty", 2),
    # --- camera ----------------------------------------------------------------------------------
    Case("camera_zoom_out_of_range", """
        shots:
          - {id: a, prompt: x, duration: 1s, camera: {zoom: 50}}
        """, "shots[0].camera.zoom", "zoom=50.0 is out of range [-0.9, 9]", 2),
    Case("camera_rotate_out_of_range", """
        shots:
          - id: a
            prompt: x
            duration: 1s
            camera:
              rotate: 9999
        """, "shots[0].camera.rotate", "rotate=9999.0 is out of range [-720, 720] (degrees)", 6),
    Case("camera_keyframe_value_out_of_range", """
        shots:
          - id: a
            prompt: x
            duration: 2s
            camera:
              - {at: 0s, zoom: 0.1}
              - {at: 1s, zoom: 50}
        """, "shots[0].camera[1].zoom", "zoom=50.0", 7),
    Case("camera_keyframes_out_of_order", """
        shots:
          - id: a
            prompt: x
            duration: 2s
            camera:
              - {at: 1s, pan_x: 0.1}
              - {at: 0.5s, pan_x: 0.2}
        """, "shots[0].camera[1].at", "keyframes must be in order", 7),
    Case("camera_keyframe_past_end", """
        shots:
          - id: a
            prompt: x
            duration: 2s
            camera:
              - {at: 0s, pan_x: 0.0}
              - {at: 5s, pan_x: 0.2}
        """, "shots[0].camera[1].at", "past the end of the shot (2s)", 7),
    Case("camera_keyframe_past_end_of_segments", """
        shots:
          - id: a
            segments:
              - {prompt: x, duration: 1s}
              - {prompt: y, duration: 1s}
            camera:
              - {at: 0s, pan_x: 0.0}
              - {at: 3s, pan_x: 0.2}
        """, "shots[0].camera[1].at", "past the end of the shot (2s)", 8),
    Case("camera_keyframe_negative", """
        shots:
          - id: a
            prompt: x
            duration: 2s
            camera:
              - {at: -1s, pan_x: 0.0}
        """, "shots[0].camera[0].at", "'-1s' is negative", 6),
    Case("camera_keyframe_missing_at", """
        shots:
          - id: a
            prompt: x
            duration: 2s
            camera:
              - {pan_x: 0.1}
        """, "shots[0].camera[0].at", "required", 6),
    Case("camera_unknown_key", """
        shots:
          - {id: a, prompt: x, duration: 1s, camera: {zoom: 0.1, dolly: 3}}
        """, "shots[0].camera.dolly", "unknown key 'dolly'", 2),
    Case("camera_unknown_key_in_keyframe", """
        shots:
          - id: a
            prompt: x
            duration: 2s
            camera:
              - {at: 0s, zooom: 0.1}
        """, "shots[0].camera[0].zooom", "did you mean 'zoom'?", 6),
    Case("camera_unknown_ease", """
        shots:
          - {id: a, prompt: x, duration: 1s, camera: {zoom: 0.1, ease: bounce}}
        """, "shots[0].camera.ease", "'bounce'", 2),
    Case("camera_unknown_ease_in_keyframe", """
        shots:
          - id: a
            prompt: x
            duration: 2s
            camera:
              - {at: 0s, zoom: 0.0}
              - {at: 2s, zoom: 0.2, ease: bounce}
        """, "shots[0].camera[1].ease", "'in_out'", 7),
    # --- transitions and chaining ----------------------------------------------------------------
    Case("transition_unknown_type", f"""
        shots:
          - {{id: a, prompt: x, duration: 1s, transition: {{type: wipe, duration: 0.5s}}}}
          - {SHOT.replace("id: a", "id: b")}
        """, "shots[0].transition.type", "'wipe'", 2),
    Case("transition_unknown_name", f"""
        shots:
          - id: a
            prompt: x
            duration: 1s
            transition: wipe
          - {SHOT.replace("id: a", "id: b")}
        """, "shots[0].transition", "'crossfade'", 5),
    Case("transition_zero_duration", """
        shots:
          - {id: a, prompt: x, duration: 1s, transition: {type: crossfade, duration: 0s}}
        """, "shots[0].transition.duration", "must be longer than zero", 2),
    Case("start_chain_on_first_shot", """
        shots:
          - id: a
            start: chain
            prompt: x
            duration: 1s
        """, "shots[0].start", "no previous shot", 3),
    Case("start_unknown", f"""
        shots:
          - {SHOT}
          - {{id: b, start: previous, prompt: x, duration: 1s}}
        """, "shots[1].start", "'previous'", 3),
    Case("chain_and_image", f"""
        shots:
          - {SHOT}
          - id: b
            start: chain
            image: ok.png
            prompt: x
            duration: 1s
        """, "shots[1].image", "cannot both chain", 5),
    # --- images ----------------------------------------------------------------------------------
    Case("image_missing", """
        shots:
          - {id: a, prompt: x, duration: 1s, image: assets/missing.png}
        """, "shots[0].image", "'assets/missing.png' not found", 2),
    Case("image_not_an_image", """
        shots:
          - {id: a, prompt: x, duration: 1s, image: text.png}
        """, "shots[0].image", "'text.png' is not a readable image", 2),
    Case("image_truncated", """
        shots:
          - {id: a, prompt: x, duration: 1s, image: truncated.png}
        """, "shots[0].image", "'truncated.png' is not a readable image", 2),
    Case("image_pixel_data_cut", """
        shots:
          - {id: a, prompt: x, duration: 1s, image: cut_pixels.png}
        """, "shots[0].image", "'cut_pixels.png' is not a readable image", 2),
    Case("image_is_a_folder", """
        shots:
          - {id: a, prompt: x, duration: 1s, image: .}
        """, "shots[0].image", "not a file", 2),
    Case("end_image_missing_on_segment", """
        shots:
          - id: a
            image: ok.png
            segments:
              - {prompt: x, duration: 1s}
              - {prompt: y, duration: 1s, end_image: nope.png}
        """, "shots[0].segments[1].end_image", "'nope.png' not found", 6),
    Case("defaults_image_missing", """
        defaults:
          image: gone.png
        shots:
          - {id: a, prompt: x, duration: 1s}
        """, "defaults.image", "'gone.png' not found", 2),
    # --- post and output -------------------------------------------------------------------------
    Case("post_unknown_preset", f"""
        shots:
          - {SHOT}
        post: [interpolat2x]
        """, "post", "unknown post preset 'interpolat2x'; did you mean 'interpolate2x'?", 3),
    Case("post_inline_bad_factor", f"""
        shots:
          - {SHOT}
        post:
          - {{stage: interpolate, factor: 3}}
        """, "post", "factor", 3),
    Case("post_inline_unknown_stage", f"""
        shots:
          - {SHOT}
        post:
          - {{stage: interpolat}}
        """, "post", "unknown post stage 'interpolat'; did you mean 'interpolate'?", 3),
    Case("post_not_a_list", f"""
        shots:
          - {SHOT}
        post: interpolate2x
        """, "post", "like [interpolate2x]", 3),
    Case("output_crf_out_of_range", f"""
        shots:
          - {SHOT}
        output: {{fps: 32, codec: h264, crf: 99}}
        """, "output.crf", "99", 3),
    Case("output_codec_unknown", f"""
        shots:
          - {SHOT}
        output:
          codec: vp9
        """, "output.codec", "'vp9'", 4),
    # --- _target_ and friends: storyboards are data ----------------------------------------------
    Case("target_top_level", f"""
        _target_: os.system
        shots:
          - {SHOT}
        """, "_target_", "'_target_' is not allowed", 1),
    Case("target_in_shot", """
        shots:
          - id: a
            prompt: x
            duration: 1s
            _target_: builtins.eval
        """, "shots[0]._target_", "is not allowed", 5),
    Case("target_in_camera", """
        shots:
          - {id: a, prompt: x, duration: 1s, camera: {_target_: x.Camera, zoom: 0.1}}
        """, "shots[0].camera._target_", "is not allowed", 2),
    Case("target_in_inline_post_stage", f"""
        shots:
          - {SHOT}
        post:
          - {{stage: interpolate, _target_: os.system}}
        """, "post[0]._target_", "is not allowed", 4),
    Case("partial_in_defaults", f"""
        defaults:
          _partial_: true
        shots:
          - {SHOT}
        """, "defaults._partial_", "'_partial_' is not allowed", 2),
]


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

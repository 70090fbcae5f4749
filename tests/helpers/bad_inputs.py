"""Bad input shared by the validation tests, the CLI tests and the bad-input corpus: the validation
cases (a storyboard, the key path, a message fragment, the line), the CLI's bad storyboards and bad
command lines, and broken PNGs."""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image


def png_bytes(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)  # noise: no compression
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def png_with_cut_pixel_data(width: int = 64, height: int = 48) -> bytes:
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
          - {id: a, prompt: x, duration: 1s, camera: {zoom: 0.1, crane: 3}}
        """, "shots[0].camera.crane", "unknown key 'crane'", 2),
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


# The real CLI on bad input (tests/integration/test_cli_errors.py): name, storyboard, fragments.
BAD_STORYBOARDS = [
    ("bad_duration", """
        shots:
          - {id: a, prompt: x, duration: 5 seconds}
        """, ["shots[0].duration", "'5 seconds'", "bad.yaml:2"]),
    ("unknown_key", """
        shots:
          - id: a
            promt: x
            duration: 1s
        """, ["shots[0].promt", "did you mean 'prompt'", "bad.yaml:3"]),
    ("several_problems", """
        resolution: 832*480
        shots:
          - {id: a, prompt: x, duration: 1s, start: chain}
          - {id: b, prompt: x, duration: 1s, image: missing.png}
          - {id: c, prompt: x, duration: 1s, camera: {zoom: 50}}
        """, ["resolution", "shots[2].camera.zoom", "bad.yaml:1", "bad.yaml:5"]),
    ("missing_image_and_chain", """
        shots:
          - {id: a, prompt: x, duration: 1s, start: chain}
          - {id: b, prompt: x, duration: 1s, image: missing.png}
        """, ["shots[0].start", "shots[1].image", "'missing.png' not found", "2 problems"]),
    ("yaml_syntax", """
        shots:
          - id: a
            prompt: x
             duration: 1s
        """, ["<yaml>", "bad.yaml:4", "column 14"]),
    ("target_key", """
        shots:
          - {id: a, prompt: x, duration: 1s}
        post:
          - {stage: interpolate, _target_: os.system}
        """, ["post[0]._target_", "not allowed"]),
]


# Bad command lines: name, arguments, fragments.
BAD_CONFIG = [
    ("unknown_engine", ["storyboard=good.yaml", "engine=nonexistent"], ["engine/nonexistent"]),
    ("zero_workers", ["storyboard=good.yaml", "workers=0"], ["workers=0"]),
    ("missing_storyboard", ["storyboard=doesnotexist"], ["storyboard=doesnotexist",
                                                         "no doesnotexist.yaml"]),
    ("no_storyboard", [], ["storyboard= is required"]),
    ("fps_not_a_number", ["storyboard=good.yaml", "fps=abc"], ["fps='abc'"]),
    ("unknown_shot", ["storyboard=good.yaml", "shots=[a,zz]"], ["shots", "no shot 'zz'"]),
    ("unknown_override_key", ["storyboard=good.yaml", "fsp=16"], ["fsp"]),
    # Hydra's grammar error quotes the bad text but not the key.
    ("malformed_override", ["storyboard=good.yaml", "shots=[a,b"], ["'[a,b'"]),
]

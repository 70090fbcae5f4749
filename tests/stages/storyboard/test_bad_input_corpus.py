"""The bad-input corpus through the render command's own entry point (`flows.render.run`): every
malformed storyboard and config exits with status 2, prints one readable line per problem with
the file and key path (and line where YAML gives one), no traceback, and writes nothing.

Three sources, counted by `test_corpus_covers_every_category_of_the_issue`:
- tests/helpers/bad_inputs.py CASES (checked in detail in test_validation.py: key path, line,
  message, count),
- the cases below that need more than validate_storyboard (an engine without end images, YAML
  reference cycles, symlinks, images outside the storyboard's folder, remote images),
- CONFIG_CASES: bad settings and command-line values.

Running in-process costs milliseconds a case; tests/integration/test_cli_errors.py runs a sample
of the
same categories through a real `python -m flows.render` process.
"""

from __future__ import annotations

import dataclasses
import struct
import textwrap
import zlib
from pathlib import Path

import pytest

from engine.preview import PREVIEW_SPEC, PreviewEngine
from engine.registry import register, unregister
from flows.render import EXIT_INVALID, run
from flows.config.settings import RenderSettings
from tests.helpers.bad_inputs import (BAD_CONFIG, BAD_STORYBOARDS, CASES, png_bytes,
                                      png_with_cut_pixel_data)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a huge size in a few bytes (a decompression bomb's header)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The storyboard folder: the images the validation CASES use, a few more, and a folder
    outside it (`outside/`) with a valid image."""
    board = tmp_path / "board"
    board.mkdir()
    data = png_bytes()
    (board / "ok.png").write_bytes(data)
    (board / "truncated.png").write_bytes(data[: len(data) // 2])
    (board / "cut_pixels.png").write_bytes(png_with_cut_pixel_data())
    (board / "text.png").write_text("this is not a picture\n", encoding="utf-8")
    (board / "huge.png").write_bytes(_png_header_only(9000, 9000))
    (board / "bomb.png").write_bytes(_png_header_only(60000, 60000))
    (board / "loop.png").symlink_to("loop.png")
    (board / "dangling.png").symlink_to("nowhere.png")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(data)
    (board / "escape.png").symlink_to(outside / "secret.png")
    return board


@pytest.fixture(autouse=True)
def t2v_only_engine():
    """An engine that can neither start nor end on an image (text to video only)."""
    spec = dataclasses.replace(PREVIEW_SPEC, name="t2v_only", modes=frozenset({"t2v"}))
    register("t2v_only", spec, PreviewEngine)
    yield
    unregister("t2v_only")


def run_bad(board: Path, text: str, capsys, **settings) -> str:
    """Run the render entry point on `text`; assert exit 2, no traceback, nothing written.
    Returns stderr."""
    path = board / "bad.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    out = board.parent / "out"
    before = sorted(str(p) for p in board.parent.rglob("*"))
    options = dict(storyboard=str(path), cwd=str(board.parent), output_dir=str(out))
    options.update(settings)
    code = run(RenderSettings(**options))
    captured = capsys.readouterr()
    report = f"exit {code}\nstdout:\n{captured.out}\nstderr:\n{captured.err}"
    assert code == EXIT_INVALID, report
    assert "Traceback" not in captured.err + captured.out, report
    assert "Nothing was rendered" in captured.err, report
    assert not out.exists(), report
    assert sorted(str(p) for p in board.parent.rglob("*")) == before, "files were written"
    return captured.err


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_validation_corpus_through_the_render_entry_point(project: Path, case, capsys):
    err = run_bad(project, case.yaml, capsys)
    file = str(project / "bad.yaml")
    where = f"{file}:{case.line}" if case.line is not None else file
    assert f"{where}: {case.key_path}: " in err, err
    assert case.fragment in err, err
    # One line per problem: "  - FILE[:LINE]: KEY PATH: message".
    assert err.count("\n  - ") == case.count, err


SHOT = "{id: a, prompt: x, duration: 1s}"

# (id, storyboard, settings, fragments that must appear on stderr)
MORE_CASES = [
    # cyclic and dangling references
    ("yaml_alias_cycle", """
        shots: &loop
          - id: a
            prompt: x
            duration: 1s
            segments: *loop
        """, {}, ["bad.yaml:1", "<yaml>", "cyclic reference"]),
    ("yaml_alias_cycle_in_list", f"""
        extra: &me [1, *me]
        shots:
          - {SHOT}
        """, {}, ["bad.yaml:1", "cyclic reference"]),
    ("yaml_dangling_alias", """
        shots:
          - {id: a, prompt: *nothing, duration: 1s}
        """, {}, ["bad.yaml:2", "undefined alias 'nothing'"]),
    ("yaml_alias_bomb", "".join(
        [f"l0: &l0 [{', '.join(['lol'] * 10)}]\n"]
        + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 9)]
        + [f"shots:\n  - {SHOT}\n"]), {}, ["expands to more than"]),
    ("image_symlink_loop", """
        shots:
          - {id: a, prompt: x, duration: 1s, image: loop.png}
        """, {}, ["shots[0].image", "cannot be resolved"]),
    ("image_dangling_symlink", """
        shots:
          - {id: a, prompt: x, duration: 1s, image: dangling.png}
        """, {}, ["shots[0].image", "'dangling.png' not found"]),
    ("chain_dangling_on_first_shot", """
        shots:
          - {id: a, prompt: x, duration: 1s, start: chain}
        """, {}, ["shots[0].start", "no previous shot"]),
    # invalid ids
    ("shot_id_path", """
        shots:
          - {id: ../../etc, prompt: x, duration: 1s}
        """, {}, ["shots[0].id", "not a valid shot id"]),
    ("shot_id_uppercase_and_space", """
        shots:
          - {id: Shot One, prompt: x, duration: 1s}
        """, {}, ["shots[0].id", "'Shot One'"]),
    ("shot_id_number", """
        shots:
          - {id: 12, prompt: x, duration: 1s}
        """, {}, ["shots[0].id", "12"]),
    ("shot_id_too_long", f"""
        shots:
          - {{id: {'a' * 65}, prompt: x, duration: 1s}}
        """, {}, ["shots[0].id", "1-64"]),
    # images: huge, outside the storyboard's folder, remote
    ("image_huge", """
        shots:
          - {id: a, prompt: x, duration: 1s, image: huge.png}
        """, {}, ["shots[0].image", "9000x9000", "scale it down"]),
    ("image_decompression_bomb", """
        shots:
          - {id: a, prompt: x, duration: 1s, image: bomb.png}
        """, {}, ["shots[0].image", "bomb.png"]),
    ("image_parent_folder", """
        shots:
          - {id: a, prompt: x, duration: 1s, image: ../outside/secret.png}
        """, {}, ["shots[0].image", "outside the storyboard's folder", "images.asset_roots"]),
    ("image_absolute_path", """
        shots:
          - {id: a, prompt: x, duration: 1s, image: /etc/hostname}
        """, {}, ["shots[0].image", "outside the storyboard's folder"]),
    ("image_symlink_out_of_folder", """
        shots:
          - {id: a, prompt: x, duration: 1s, image: escape.png}
        """, {}, ["shots[0].image", "outside the storyboard's folder"]),
    ("image_remote_off", """
        shots:
          - {id: a, prompt: x, duration: 1s, image: "https://example.invalid/a.png"}
        """, {}, ["shots[0].image", "remote images are off", "images.remote=true"]),
    ("image_file_url", """
        shots:
          - {id: a, prompt: x, duration: 1s, image: "file:///etc/passwd"}
        """, {}, ["shots[0].image", "file:// is not supported"]),
    # engine abilities
    ("end_image_on_engine_without_it", """
        shots:
          - {id: a, prompt: x, duration: 1s, end_image: ok.png}
        """, {"engine": {"name": "t2v_only"}}, ["shots[0].end_image", "cannot end on an image"]),
    ("start_image_on_text_only_engine", """
        shots:
          - {id: a, prompt: x, duration: 1s, image: ok.png}
        """, {"engine": {"name": "t2v_only"}}, ["shots[0].image", "cannot start from an image"]),
    ("several_categories_at_once", """
        fps: 0
        shots:
          - {id: A, prompt: x, duration: -1s}
          - {id: b, prompt: x, duration: 1s, image: ../outside/secret.png}
        """, {}, ["bad.yaml:1: fps", "shots[0].id", "shots[0].duration", "shots[1].image"]),
]


@pytest.mark.parametrize("name,text,settings,fragments", MORE_CASES,
                         ids=[c[0] for c in MORE_CASES])
def test_more_bad_storyboards(project: Path, name, text, settings, fragments, capsys):
    err = run_bad(project, text, capsys, **settings)
    for fragment in fragments:
        assert fragment in err, err


GOOD = f"""
shots:
  - {SHOT}
"""

# (id, settings, fragments): a valid storyboard, bad settings.
CONFIG_CASES = [
    ("unknown_engine", {"engine": {"name": "wan99"}}, ["engine=wan99", "unknown engine"]),
    ("engine_without_name", {"engine": {}}, ["engine.name"]),
    ("engine_unknown_option", {"engine": {"name": "preview", "options": {"turbo": True}}},
     ["engine=preview", "turbo"]),
    ("workers_zero", {"workers": 0}, ["workers=0"]),
    ("retries_negative", {"retries": -1}, ["retries=-1"]),
    ("setting_fps_zero", {"fps": 0}, ["fps=0"]),
    ("fps_text", {"fps": "fast"}, ["fps='fast'"]),
    ("shots_unknown_id", {"shots": ["a", "zz"]}, ["shots", "no shot 'zz'"]),
    ("setting_shots_not_a_list", {"shots": "a"}, ["shots='a'"]),
    ("setting_output_crf_out_of_range", {"output": {"crf": 99}}, ["output.crf"]),
    ("setting_output_codec_unknown", {"output": {"codec": "divx"}}, ["output.codec"]),
    ("default_post_unknown_stage", {"post": [{"stage": "sharpen"}]}, ["post", "sharpen"]),
    ("images_unknown_key", {"images": {"remotes": True}}, ["images.remotes", "unknown key"]),
    ("images_asset_roots_not_a_list", {"images": {"asset_roots": "/data"}},
     ["images.asset_roots"]),
    ("images_remote_not_bool", {"images": {"remote": "yes"}}, ["images.remote='yes'"]),
    ("images_remote_limit_zero", {"images": {"remote_max_mb": 0}}, ["images.remote_max_mb=0"]),
    ("progress_unknown", {"progress": "fancy"}, ["progress='fancy'"]),
    ("watch_interval_zero", {"watch_interval": 0}, ["watch_interval=0"]),
    ("watch_max_runs_zero", {"watch_max_runs": 0}, ["watch_max_runs=0"]),
    ("disk_check_not_bool", {"disk_check": "maybe"}, ["disk_check='maybe'"]),
    ("storyboard_missing", {"storyboard": "nope"}, ["storyboard=nope", "no nope.yaml"]),
]


@pytest.mark.parametrize("name,settings,fragments", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_bad_config(project: Path, name, settings, fragments, capsys):
    err = run_bad(project, GOOD, capsys, **settings)
    for fragment in fragments:
        assert fragment in err, err


def test_storyboard_name_that_would_escape_the_output_folder(project: Path, capsys):
    # A file called "...yaml" has the stem "..": its render folder would be the output root's
    # parent. It is refused like any bad setting.
    path = project / "...yaml"
    path.write_text(GOOD, encoding="utf-8")
    out = project.parent / "out"
    code = run(RenderSettings(storyboard=str(path), cwd=str(project), output_dir=str(out)))
    err = capsys.readouterr().err
    assert code == EXIT_INVALID and "cannot name an output folder" in err, err
    assert not out.exists()


# The categories the issue lists, and the cases that cover them (ids from all three sources).
CATEGORIES = {
    "YAML syntax errors (line and column)": ["yaml_syntax_error", "yaml_unclosed_quote"],
    "wrong types": ["fps_not_a_number", "seed_float", "prompt_not_text", "shot_not_a_mapping"],
    "unknown keys": ["unknown_shot_key", "unknown_top_key", "unknown_segment_key"],
    "missing required keys": ["missing_shots", "prompt_missing", "duration_missing"],
    "empty shots": ["empty_shots", "segments_empty"],
    "duplicate shot ids": ["shot_ids_duplicate"],
    "invalid ids": ["shot_id_invalid", "shot_id_path", "shot_id_number", "shot_id_too_long"],
    "durations negative / zero / absurd": ["duration_negative_number", "duration_zero",
                                           "duration_ten_hours"],
    "resolution not a multiple of 16 / absurd": ["resolution_not_multiple_of_16",
                                                  "resolution_absurd"],
    "fps out of range": ["fps_zero", "fps_absurd", "setting_fps_zero"],
    "camera values out of range": ["camera_zoom_out_of_range", "camera_rotate_out_of_range"],
    "keyframes out of order / past the end": ["camera_keyframes_out_of_order",
                                              "camera_keyframe_past_end"],
    "start: chain on the first shot": ["start_chain_on_first_shot"],
    "images missing / not images / truncated / huge": [
        "image_missing", "image_not_an_image", "image_truncated", "image_huge",
        "image_decompression_bomb"],
    "end image on an engine without it": ["end_image_on_engine_without_it"],
    "unknown engine or post preset": ["unknown_engine", "post_unknown_preset"],
    "cyclic or dangling references": ["yaml_alias_cycle", "yaml_dangling_alias",
                                      "image_symlink_loop", "shots_unknown_id"],
    "instantiation keys (_target_)": ["target_top_level", "target_in_shot"],
    "paths outside the storyboard's folder, remote images": [
        "image_parent_folder", "image_absolute_path", "image_symlink_out_of_folder",
        "image_remote_off"],
    "config errors": ["workers_zero", "output_crf_out_of_range", "images_unknown_key"],
}


def corpus_ids() -> list[str]:
    return ([c.id for c in CASES] + [c[0] for c in MORE_CASES] + [c[0] for c in CONFIG_CASES]
            + ["storyboard_name_escape"] + [f"cli_{c[0]}" for c in BAD_STORYBOARDS + BAD_CONFIG])


def test_corpus_covers_every_category_of_the_issue():
    ids = corpus_ids()
    assert len(ids) == len(set(ids)), "case ids must be unique across the corpus"
    missing = {category: [c for c in cases if c not in ids]
               for category, cases in CATEGORIES.items()}
    assert not any(missing.values()), missing
    assert len(ids) >= 40

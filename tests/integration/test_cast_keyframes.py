"""Generated keyframes through the real flow, beyond the cast render: stale keyframe files leave
the render folder (a subset render touches only its own shots'), a keyframe two shots share is
generated once, the progress counts keyframes, and a keyframe engine that cannot load stops the
render before any work with the engine, the file to fix and the way out."""

from __future__ import annotations

import json

import pytest

from flows.config.settings import RenderSettings
from flows.render import EXIT_FAILED, EXIT_OK, run
from tests.helpers.cast_boards import write_cast_board
from tests.helpers.still_engines import (BOARD, CountingStills, register_still_engines,
                                         unregister_still_engines)

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def stills():
    register_still_engines()
    yield CountingStills
    unregister_still_engines()


def settings(tmp_path, **kw) -> RenderSettings:
    base = dict(storyboard=str(tmp_path / "project" / "cast.yaml"),
                output_dir=str(tmp_path / "renders"), cache_dir=str(tmp_path / "cache"),
                engine={"name": "preview", "params": {}}, post=[], retry_delay=0.0, workers=2,
                progress="lines")
    base.update(kw)
    return RenderSettings(**base)


def test_a_shared_keyframe_is_generated_once_and_counted_in_the_progress(tmp_path, stills,
                                                                         capsys):
    write_cast_board(tmp_path / "project", BOARD)
    assert run(settings(tmp_path)) == EXIT_OK
    # s01's and s02's start keyframes have one key: one generation, both shots' files.
    assert sorted(r.prompt for r in stills.calls) == ["the harbour at dawn",
                                                      "the harbour at noon"]
    folder = tmp_path / "renders" / "cast"
    names = sorted(p.name for p in (folder / "frames").glob("*_keyframe*.png"))
    assert names == ["s01_keyframe.png", "s02_keyframe.png", "s02_keyframe_end.png"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["keyframes_rendered"] == 2 and manifest["keyframes_cached"] == 1
    assert [k["which"] for s in manifest["shots"] for k in s["keyframes"]] == \
        ["start", "start", "end"]
    out = capsys.readouterr().out
    assert "progress: 1/2 keyframes, 0/2 segments" in out
    assert "progress: 2/2 keyframes, 2/2 segments, 2/2 shots, 100%" in out

    stills.calls.clear()
    assert run(settings(tmp_path)) == EXIT_OK  # all cached: the progress says so
    assert stills.calls == []
    assert "2/2 keyframes (all cached), 2/2 segments" in capsys.readouterr().out


def test_stale_keyframe_files_are_removed_subset_renders_keep_other_shots(tmp_path, stills):
    project = tmp_path / "project"
    write_cast_board(project, BOARD)
    assert run(settings(tmp_path)) == EXIT_OK
    frames = tmp_path / "renders" / "cast" / "frames"
    assert (frames / "s02_keyframe_end.png").is_file()

    # s01 draws its start image by hand now, s02 loses its end keyframe; a render of s01 only
    # removes s01's keyframe and leaves s02's files to the full render.
    (project / "pic.png").write_bytes((project / "gull.png").read_bytes())
    edited = BOARD.replace('image: {generate: "the harbour at dawn", engine: stills_test, '
                           'seed: 5}\n    prompt: "boats"', 'image: pic.png\n    prompt: "boats"')
    edited = edited.replace('    end_image: {generate: "the harbour at noon", engine: '
                            'stills_test, seed: 6}\n', "")
    (project / "cast.yaml").write_text(edited)
    assert run(settings(tmp_path, shots=["s01"])) == EXIT_OK
    assert not (frames / "s01_keyframe.png").exists()
    assert (frames / "s02_keyframe.png").is_file() and (frames / "s02_keyframe_end.png").is_file()

    # The full render drops s02's end keyframe; renaming s02 drops its start keyframe too.
    (project / "cast.yaml").write_text(edited.replace("id: s02", "id: s09"))
    assert run(settings(tmp_path)) == EXIT_OK
    names = sorted(p.name for p in frames.glob("*keyframe.png"))
    assert names == ["s09_keyframe.png"]


def test_a_keyframe_engine_that_cannot_load_stops_the_render_before_any_work(tmp_path, stills,
                                                                            capsys):
    write_cast_board(tmp_path / "project", BOARD.replace("engine: stills_test, seed: 6",
                                                         "engine: stills_broken, seed: 6"))
    assert run(settings(tmp_path)) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "error: render of cast failed: keyframe engine 'stills_broken' could not load" in err
    assert "no weights at /models/none" in err and "conf/engine/stills_broken.yaml" in err
    assert "Nothing was rendered (no keyframe, no segment)" in err
    assert "keyframes.engine=NAME" in err
    assert stills.calls == []  # not even the other engine's keyframes
    assert not list((tmp_path / "cache").rglob("meta.json"))

"""Cast and generated keyframes in validation and the resolver (README "Cast and keyframes")."""

from __future__ import annotations

import pytest

from engine.base import EngineSpec
from engine.registry import engine_spec, register, unregister
from stages.storyboard.cast import expand, placeholders
from stages.storyboard.problems import StoryboardInvalid
from stages.storyboard.resolve import resolve_shot
from stages.storyboard.schema import CastMember
from stages.storyboard.validate import ValidateOptions, validate_storyboard
from tests.helpers.cast_boards import CAST_BOARD, write_cast_board


def problems(tmp_path, text, engine="preview", **options) -> str:
    path = write_cast_board(tmp_path, text)
    with pytest.raises(StoryboardInvalid) as info:
        validate_storyboard(path, engine_spec(engine), ValidateOptions(**options))
    return str(info.value)


def board(shots: str, cast: str = "  keeper: {images: [keeper_front.png], description: old}\n"):
    return f"fps: 8\nresolution: 128x96\ncast:\n{cast}shots:\n{shots}"


def test_expand_rule():
    cast = {"keeper": CastMember(images=["a.png"], description="an old man"),
            "gull": CastMember(images=["b.png"])}
    assert expand("{keeper} and {gull}", cast) == "an old man and gull"
    assert expand("{{keeper}} ${keeper} {x y}", cast) == "{keeper} ${keeper} {x y}"
    assert expand("{keeper}", None) == "{keeper}"  # no cast section: verbatim
    assert placeholders("{a} {b} {a} {{c}} ${d}") == ["a", "b"]


def test_the_example_validates_and_resolves(tmp_path):
    vs = validate_storyboard(write_cast_board(tmp_path), engine_spec("preview"))
    assert resolve_shot(vs.model.shots[0], None).cast == ("keeper",)
    assert any("'gull' is listed by no shot" in w for w in vs.warnings)


def test_defaults_cast_is_inherited(tmp_path):
    text = board("  - {id: a, prompt: '{keeper}', frames: 9}\n").replace(
        "shots:", "defaults: {cast: [keeper]}\nshots:")
    vs = validate_storyboard(write_cast_board(tmp_path, text), engine_spec("preview"))
    assert resolve_shot(vs.model.shots[0], vs.model.defaults).cast == ("keeper",)


def test_unknown_member_did_you_mean(tmp_path):
    out = problems(tmp_path, board("  - {id: a, cast: [kepper], prompt: x, frames: 9}\n"))
    assert "shots[0].cast[0]" in out and "unknown cast member 'kepper'" in out
    assert "did you mean 'keeper'" in out


def test_placeholder_for_unlisted_member(tmp_path):
    out = problems(tmp_path, board("  - {id: a, prompt: 'see {keeper}', frames: 9}\n"))
    assert "shots[0].prompt" in out and "shot a" in out and "'keeper'" in out
    assert "cast: [keeper]" in out
    out = problems(tmp_path, board("  - {id: a, cast: [keeper], prompt: x, frames: 9, "
                                   "negative: '{kepper}'}\n"))
    assert "shots[0].negative" in out and "did you mean 'keeper'" in out


def test_missing_reference_and_bad_counts(tmp_path):
    out = problems(tmp_path, board("  - {id: a, cast: [keeper], prompt: x, frames: 9}\n",
                                   "  keeper: {images: [nope.png]}\n"))
    assert "cast.keeper.images[0]" in out and "not found" in out
    out = problems(tmp_path, board("  - {id: a, prompt: x, frames: 9}\n",
                                   "  keeper: {images: []}\n"))
    assert "cast.keeper.images" in out
    out = problems(tmp_path, board("  - {id: a, prompt: x, frames: 9}\n",
                                   "  keeper: {images: [a, b, c, d]}\n"))
    assert "cast.keeper.images" in out


def test_unreadable_reference(tmp_path):
    (tmp_path / "bad.png").parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    out = problems(tmp_path, board("  - {id: a, cast: [keeper], prompt: x, frames: 9}\n",
                                   "  keeper: {images: [bad.png]}\n"))
    assert "cast.keeper.images[0]" in out and "not a readable image" in out


@pytest.fixture
def two_ref_engine():
    spec = EngineSpec(name="two_refs", max_references=1,
                      modes=frozenset({"t2v", "i2v", "flf2v"}))
    register("two_refs", spec, lambda **kw: None)
    yield spec
    unregister("two_refs")


def test_more_references_than_the_engine_takes(tmp_path, two_ref_engine):
    text = CAST_BOARD
    out = problems(tmp_path, text, engine="two_refs")
    assert "shots[0].cast" in out and "2 reference images" in out and "two_refs" in out


@pytest.fixture
def no_ref_engine():
    # A video engine that takes no references (max_references 0), whatever the registry holds.
    spec = EngineSpec(name="no_refs", max_references=0, modes=frozenset({"t2v", "i2v", "flf2v"}))
    register("no_refs", spec, lambda **kw: None)
    yield spec
    unregister("no_refs")


@pytest.fixture
def one_ref_stills():
    # An image engine that takes one reference: fewer than the keeper's two.
    spec = EngineSpec(name="one_ref_stills", max_references=1, modes=frozenset({"t2i"}))
    register("one_ref_stills", spec, lambda **kw: None)
    yield spec
    unregister("one_ref_stills")


def test_engine_without_references_warns_naming_those_that_can(tmp_path, no_ref_engine):
    text = board("  - {id: a, cast: [keeper], prompt: x, frames: 9}\n")
    vs = validate_storyboard(write_cast_board(tmp_path, text), no_ref_engine)
    warning = next(w for w in vs.warnings if "cannot use cast reference" in w)
    assert "shot a" in warning and "render engine 'no_refs'" in warning
    assert "preview" in warning and "no_refs" not in warning.split("engines that can:")[1]


def test_more_references_than_the_keyframe_engine_takes(tmp_path, one_ref_stills):
    # keeper has two references; the render engine (preview) takes them, the keyframe one not.
    text = board("  - {id: a, cast: [keeper], image: {generate: '{keeper}', engine: "
                 "one_ref_stills}, prompt: x, frames: 9}\n",
                 "  keeper: {images: [keeper_front.png, keeper_side.png]}\n")
    out = problems(tmp_path, text)
    assert "shots[0].image" in out and "2 reference images" in out
    assert "keyframe engine 'one_ref_stills' takes (1)" in out and "fewer images" in out
    assert "render engine" not in out


def test_keyframe_engine_rule(tmp_path):
    text = board("  - {id: a, image: {generate: x, engine: previw}, prompt: x, frames: 9}\n")
    out = problems(tmp_path, text)
    assert "shots[0].image.engine" in out and "did you mean 'preview'" in out
    text = board("  - {id: a, image: {generate: x}, prompt: x, frames: 9}\n")
    out = problems(tmp_path, text, keyframes_engine="svd")
    assert "keyframes.engine" in out and "makes no images" in out


def test_no_image_engine_names_the_fix(tmp_path, two_ref_engine):
    text = board("  - {id: a, image: {generate: x}, prompt: x, frames: 9}\n")
    out = problems(tmp_path, text, engine="two_refs")
    assert "no engine to generate this keyframe" in out and "keyframes.engine" in out


def test_chained_shot_cannot_generate_its_start(tmp_path):
    text = board("  - {id: a, prompt: x, frames: 9}\n"
                 "  - {id: b, start: chain, image: {generate: x}, prompt: x, frames: 9}\n")
    out = problems(tmp_path, text)
    assert "shots[1].image.generate" in out and "chained" in out

""".cube LUTs: parsing, identity, generated tables with known answers, and the colour stage."""

from __future__ import annotations

import numpy as np
import pytest

from stages.post.lut import LutError, apply_lut, format_cube, identity_table, load_cube, parse_cube
from stages.post.chain import resolve_post_chain, run_post_chain
from tests.helpers.lut_reference import reference_apply_3d
from tests.helpers.post_media import panning


def all_colours() -> np.ndarray:
    """Every 4th level of every channel: 64^3 colours as a 512x512 RGB frame."""
    v = np.arange(0, 256, 4, dtype=np.uint8)
    r, g, b = np.meshgrid(v, v, v, indexing="ij")
    return np.stack([r, g, b], -1).reshape(512, 512, 3)


@pytest.mark.parametrize("n", [2, 17, 33])
def test_identity_lut_is_exact(n):
    lut = parse_cube(format_cube(identity_table(n), "identity"))
    frame = all_colours()
    assert lut.title == "identity" and lut.size == n
    assert np.array_equal(apply_lut(frame, lut), frame)


def test_generated_linear_lut_matches_its_formula():
    # out = (1 - b, 0.5·g + 0.25, r): linear in each channel, so trilinear interpolation of a
    # 9-point table reproduces it exactly (up to rounding).
    t = identity_table(9)
    table = np.stack([1 - t[..., 2], 0.5 * t[..., 1] + 0.25, t[..., 0]], -1)
    lut = parse_cube(format_cube(table))
    frame = all_colours().astype(np.float64) / 255
    want = np.stack([1 - frame[..., 2], 0.5 * frame[..., 1] + 0.25, frame[..., 0]], -1)
    got = apply_lut(all_colours(), lut).astype(np.float64) / 255
    assert np.abs(got - want).max() <= 1 / 255 + 1e-9


def test_generated_gamma_lut_is_close_and_strength_mixes():
    lut = parse_cube(format_cube(identity_table(33) ** 2.2))
    frame = all_colours()
    want = (frame / 255.0) ** 2.2 * 255
    got = apply_lut(frame, lut).astype(float)
    assert np.abs(got - want).max() < 3.0  # trilinear between 33 samples of a smooth curve
    half = apply_lut(frame, lut, strength=0.5).astype(float)
    assert np.abs(half - (frame + got) / 2).max() <= 1.0


def test_1d_lut_and_domain():
    text = "LUT_1D_SIZE 2\nDOMAIN_MIN 0 0 0\nDOMAIN_MAX 1 1 1\n1 1 1\n0 0 0\n"  # inverts
    frame = all_colours()
    assert np.array_equal(apply_lut(frame, parse_cube(text)), 255 - frame)
    # Domain 0..0.5: input 0.5 and above maps to the table's end.
    half = parse_cube("LUT_3D_SIZE 2\nDOMAIN_MAX 0.5 0.5 0.5\n" + "\n".join(
        " ".join(map(str, row)) for row in identity_table(2).reshape(-1, 3)))
    out = apply_lut(np.full((1, 1, 3), 200, np.uint8), half)
    assert out.tolist() == [[[255, 255, 255]]]


def _graded(n: int) -> np.ndarray:
    t = identity_table(n).astype(np.float64)
    r, g, b = t[..., 0], t[..., 1], t[..., 2]
    return np.clip(np.stack([0.8 * r**0.9 + 0.15 * g + 0.05 * np.sin(6 * b),
                             0.9 * g**1.1 + 0.1 * b * r,
                             0.7 * b + 0.2 * r * g + 0.1 * np.cos(5 * r)], -1), 0, 1)


@pytest.mark.parametrize("n, domain", [(33, ""), (17, ""), (5, ""),
                                       (17, "DOMAIN_MIN 0.1 0.05 0\nDOMAIN_MAX 0.9 1 0.8\n")])
def test_pillow_application_is_within_one_level_of_float_trilinear(n, domain):
    """Pillow's Color3DLUT (fixed point, in C) against a float trilinear reference."""
    lut = parse_cube(domain + format_cube(_graded(n)))
    frame = all_colours()
    diff = np.abs(apply_lut(frame, lut).astype(int) - reference_apply_3d(frame, lut))
    assert diff.max() <= 1


def test_pillow_filter_is_built_once_per_table():
    from stages.post import lut as lut_module

    lut = parse_cube(format_cube(_graded(9)))
    lut_module._pillow_filter.cache_clear()
    for _ in range(3):
        apply_lut(all_colours()[:8], lut)
    info = lut_module._pillow_filter.cache_info()
    assert (info.misses, info.hits) == (1, 2)


@pytest.mark.parametrize("text, message", [
    ("1 2 3\n", "exactly one of LUT_3D_SIZE"),
    ("LUT_3D_SIZE 2\n0 0 0\n", "needs 8 table rows, found 1"),
    ("LUT_3D_SIZE 2\n" + "0 0 0\n" * 7 + "0 0\n", "line 9: expected three numbers"),
    ("LUT_3D_SIZE x\n", "line 1: bad LUT_3D_SIZE"),
    ("LUT_3D_SIZE 2\nDOMAIN_MIN 1 1 1\n" + "0 0 0\n" * 8, "DOMAIN_MAX"),
])
def test_bad_cube_files_name_the_problem(text, message):
    with pytest.raises(LutError, match=message):
        parse_cube(text, "look.cube")


def test_colour_stage_applies_a_lut_file(tmp_path):
    path = tmp_path / "invert.cube"
    path.write_text("# invert\n" + format_cube(1 - identity_table(5)))
    frames = panning(3)
    out, _ = run_post_chain(iter(frames), 16, resolve_post_chain(
        [{"stage": "color", "lut": "invert.cube"}], {}, tmp_path))
    assert all(np.array_equal(o, 255 - f) for o, f in zip(out, frames))
    assert load_cube(path).size == 5

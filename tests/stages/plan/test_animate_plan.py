"""An animate shot's character reference: its image, else its first cast member's first
reference; never the previous shot's last frame, also with `start: chain` (stages.plan.animate)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.registry import engine_spec
from stages.plan.build import build_plan
from stages.storyboard.validate import StoryboardInvalid, validate_storyboard
from tests.helpers.synthetic import write_png


def driving_video(path: Path, frames: int = 12) -> Path:
    from stages.media.video_io import VideoWriter

    with VideoWriter(path, 64, 64, 16, codec="ffv1") as out:
        for i in range(frames):
            frame = np.zeros((64, 64, 3), np.uint8)
            frame[20:40, 4 * i:4 * i + 16] = 220
            out.write(frame)
    return path


BOARD = """
fps: 16
resolution: 64x64
cast:
  keeper: {images: [keeper_front.png, keeper_side.png]}
  gull: {images: [gull.png]}
shots:
  - {id: a, image: start.png, prompt: "the sea", frames: 9, driving_video: drive.mkv}
  - {id: b, start: chain, cast: [keeper, gull], prompt: "{keeper} walks", frames: 9,
     driving_video: drive.mkv}
  - {id: c, start: chain, image: other.png, cast: [keeper], prompt: "x", frames: 9,
     driving_video: drive.mkv}
"""


def project(root: Path, text: str = BOARD) -> Path:
    for i, name in enumerate(("start", "keeper_front", "keeper_side", "gull", "other")):
        write_png(root / f"{name}.png", 64, 64, seed=i)
    driving_video(root / "drive.mkv")
    path = root / "sb.yaml"
    path.write_text(text)
    return path


def plan(path: Path, engine: str = "wan_animate"):
    return build_plan(validate_storyboard(path, engine_spec(engine)), {"engine": engine}, {})


def test_a_chained_animate_shot_animates_the_cast_image_or_its_own(tmp_path):
    a, b, c = plan(project(tmp_path)).shots
    first_b, first_c = b.segments[0], c.segments[0]
    # b: the first reference of its first cast member, not a's last frame.
    assert first_b.start.kind == "image" and first_b.start.image.name == "keeper_front.png"
    # c: its own image wins over the cast.
    assert first_c.start.kind == "image" and first_c.start.image.name == "other.png"
    for job in (first_b, first_c):
        assert job.upstream_key is None and job.chain.lead == 0 and not job.drop_first
        assert job.frames == 9  # no extra frame shared with the shot before
    # Editing the previous shot changes neither (they take nothing from it).
    path = tmp_path / "sb.yaml"
    path.write_text(BOARD.replace('prompt: "the sea"', 'prompt: "the storm"'))
    a2, b2, c2 = plan(path).shots
    assert a2.segments[0].key != a.segments[0].key
    assert b2.segments[0].key == first_b.key and c2.segments[0].key == first_c.key


def test_editing_the_cast_image_rerenders_the_animate_shot(tmp_path):
    path = project(tmp_path)
    before = plan(path).shots[1].segments[0].key
    write_png(tmp_path / "keeper_front.png", 64, 64, seed=42)
    assert plan(path).shots[1].segments[0].key != before


def test_an_animate_shot_without_image_or_cast_is_refused(tmp_path):
    text = BOARD.replace("cast: [keeper, gull], ", "")
    with pytest.raises(StoryboardInvalid, match="cast member with reference images"):
        plan(project(tmp_path, text))


def test_other_engines_still_chain_from_the_last_frame(tmp_path):
    # On an engine without animate the driving video is ignored: shot b chains as before.
    text = BOARD.replace(", image: other.png", "")
    _, b, c = plan(project(tmp_path, text), "preview").shots
    assert b.segments[0].start.kind == "chain" and c.segments[0].start.kind == "chain"


def test_no_ignored_references_warning_when_the_cast_image_is_the_character(tmp_path):
    vs = validate_storyboard(project(tmp_path), engine_spec("wan_animate"))
    said = [w for w in vs.warnings if "cannot use cast reference" in w]
    assert len(said) == 1 and said[0].startswith("shot c:")  # c has its own image

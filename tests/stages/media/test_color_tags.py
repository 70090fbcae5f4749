"""Deliverables carry BT.709 primaries, transfer and matrix (and limited range), read back from
the written file; the tags are part of the deliverable content key, not of the intermediates'."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from stages.media import video_io
from stages.media.probe import VideoColor, _parse_color, video_color
from stages.media.video_io import DELIVERABLE_COLOR, write_video
from stages.plan import keys


def _frames(n: int = 3, h: int = 32, w: int = 48) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_deliverables_are_tagged_bt709_throughout(tmp_path, codec):
    path = tmp_path / f"out_{codec}.mp4"
    write_video(path, _frames(), 24, codec=codec)
    assert video_color(path) == VideoColor(range="tv", matrix="bt709", primaries="bt709",
                                           transfer="bt709")


def test_enhance_style_writer_with_metadata_is_tagged_too(tmp_path):
    path = tmp_path / "enhanced.mp4"
    with video_io.VideoWriter(path, 48, 32, 30, codec="h264", crf=20,
                              metadata={"reelforge_source": "x"}) as writer:
        for frame in _frames():
            writer.write(frame)
    color = video_color(path)
    assert (color.primaries, color.transfer, color.matrix) == ("bt709", "bt709", "bt709")


def test_tags_leave_the_pixels_alone(tmp_path):
    """The tags only describe the encoding: decoding still uses the BT.709 matrix."""
    frame = np.full((32, 48, 3), (200, 90, 30), np.uint8)
    path = tmp_path / "flat.mp4"
    write_video(path, [frame] * 2, 24, codec="h264", crf=0)
    back = next(iter(video_io.read_frames(path)))
    assert np.abs(back.astype(int) - frame.astype(int)).max() <= 2


def test_lossless_intermediates_keep_their_rgb_description(tmp_path):
    path = tmp_path / "clip.mkv"
    write_video(path, _frames(), 24, codec="ffv1")
    assert video_color(path).matrix == "gbr"


@pytest.mark.parametrize("line, expected", [
    ("h264 (High) (avc1 / 0x31637661), yuv420p(tv, bt709, progressive), 64x64",
     ("tv", "bt709", "bt709", "bt709")),
    ("h264 (High) (avc1 / 0x31637661), yuv420p(tv, bt709/unknown/unknown, progressive), 64x64",
     ("tv", "bt709", "unknown", "unknown")),
    ("hevc (Main), yuv420p(pc, bt470bg/smpte170m/smpte170m), 64x64",
     ("pc", "bt470bg", "smpte170m", "smpte170m")),
    ("h264 (High), yuv420p(progressive), 64x64", ("unknown",) * 4),
    ("mpeg4, yuv420p, 64x64", ("unknown",) * 4),
])
def test_parse_color(line, expected):
    c = _parse_color(line)
    assert (c.range, c.matrix, c.primaries, c.transfer) == expected


def test_colour_description_is_in_the_deliverable_key(monkeypatch):
    plan = SimpleNamespace(output=SimpleNamespace(model_dump=lambda: {"codec": "h264"}),
                           output_fps=24.0)
    before = keys.deliverable_key(plan, "shot", "inner")
    monkeypatch.setattr(video_io, "DELIVERABLE_COLOR", {**DELIVERABLE_COLOR, "primaries": "x"})
    assert keys.deliverable_key(plan, "shot", "inner") != before

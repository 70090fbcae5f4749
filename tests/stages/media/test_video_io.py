"""stages.media.video_io and stages.media.atomic: lossless round-trips, atomic writes, exact frame counts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from stages.media.atomic import (atomic_dir, atomic_path, atomic_write_bytes, atomic_write_json,
                           atomic_write_text)
from stages.media.video_io import (VideoInfo, VideoWriter, last_frame, load_png, read_frames,
                             read_metadata, save_png, video_info, write_video)


def _random_frames(n: int, h: int, w: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def _smooth_frames(n: int, h: int, w: int) -> list[np.ndarray]:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = []
    for i in range(n):
        r = 128 + 100 * np.sin((x + 2 * i) / 11.0)
        g = 128 + 100 * np.cos((y - i) / 9.0)
        b = 60 + 2 * x * 150 / w * 0.5 + i
        frames.append(np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8))
    return frames


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if ".tmp-" in p.name)


# ----------------------------------------------------------------------------- FFV1 / lossless


@pytest.mark.parametrize("h,w", [(32, 48), (64, 96), (40, 56), (33, 47)])
def test_ffv1_roundtrip_is_bit_exact(tmp_path, h, w):
    frames = _random_frames(5, h, w, seed=h * w)
    path = tmp_path / "clip.mkv"
    assert write_video(path, frames, 16) == 5
    decoded = list(read_frames(path))
    assert len(decoded) == len(frames)
    for a, b in zip(decoded, frames):
        assert a.dtype == np.uint8 and a.shape == (h, w, 3)
        np.testing.assert_array_equal(a, b)
    assert _leftovers(tmp_path) == []


def test_video_info_counts_frames_exactly(tmp_path):
    path = tmp_path / "c.mkv"
    write_video(path, _random_frames(17, 32, 48), 16)
    info = video_info(path)
    assert info == VideoInfo(width=48, height=32, fps=16.0, frames=17, duration_s=17 / 16)


def test_video_info_ntsc_fps(tmp_path):
    path = tmp_path / "ntsc.mkv"
    write_video(path, _random_frames(3, 16, 16), 24000 / 1001)
    info = video_info(path)
    assert info.frames == 3
    assert info.fps == pytest.approx(24000 / 1001, abs=1e-6)


def test_last_frame_equals_last_written(tmp_path):
    frames = _random_frames(40, 32, 48, seed=3)  # 2.5 s: exercises the seek-from-end path
    path = tmp_path / "c.mkv"
    write_video(path, frames, 16)
    np.testing.assert_array_equal(last_frame(path), frames[-1])
    one = tmp_path / "one.mkv"
    write_video(one, frames[:1], 16)
    np.testing.assert_array_equal(last_frame(one), frames[0])


def test_read_frames_streams_and_stops_early(tmp_path):
    frames = _random_frames(10, 16, 16)
    path = tmp_path / "c.mkv"
    write_video(path, frames, 8)
    it = read_frames(path)
    first = next(it)
    np.testing.assert_array_equal(first, frames[0])
    first[0, 0] = 0  # frames are writable copies
    it.close()  # terminates ffmpeg without reading the rest


# ----------------------------------------------------------------------------- lossy deliverables


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_lossy_mp4_decodes_with_right_shape_and_quality(tmp_path, codec):
    frames = _smooth_frames(12, 64, 96)
    path = tmp_path / f"out_{codec}.mp4"
    write_video(path, frames, 16, codec=codec, crf=18, preset="ultrafast")
    info = video_info(path)
    assert (info.width, info.height, info.fps, info.frames) == (96, 64, 16.0, 12)
    assert info.duration_s == pytest.approx(12 / 16)
    decoded = list(read_frames(path))
    assert len(decoded) == 12
    assert all(d.shape == (64, 96, 3) for d in decoded)
    assert min(_psnr(a, b) for a, b in zip(decoded, frames)) > 30
    # colours survive (BT.709 tagging is honoured on decode): no systematic shift
    mean_err = np.mean([a.astype(float).mean((0, 1)) - b.astype(float).mean((0, 1))
                        for a, b in zip(decoded, frames)], axis=0)
    assert np.all(np.abs(mean_err) < 2.0)
    np.testing.assert_array_equal(last_frame(path), decoded[-1])


def test_lossy_rejects_odd_size(tmp_path):
    with pytest.raises(ValueError, match="even"):
        VideoWriter(tmp_path / "x.mp4", 47, 32, 16, codec="h264")


def test_metadata_roundtrip_mp4_and_mkv(tmp_path):
    manifest = json.dumps({"storyboard": "ep01", "note": "a=b; #c \\ d\nline2", "fps": 16})
    for name, codec in [("m.mp4", "h264"), ("m.mkv", "ffv1")]:
        path = tmp_path / name
        write_video(path, _smooth_frames(2, 32, 32), 16, codec=codec, preset="ultrafast",
                    metadata={"reelforge_manifest": manifest, "title": "$(rm -rf /) `x`"})
        meta = read_metadata(path)
        assert meta["reelforge_manifest"] == manifest
        assert json.loads(meta["reelforge_manifest"])["note"] == "a=b; #c \\ d\nline2"
        assert meta["title"] == "$(rm -rf /) `x`"


# ----------------------------------------------------------------------------- failures / atomicity


def test_writer_exception_leaves_nothing(tmp_path):
    path = tmp_path / "broken.mkv"
    frames = _random_frames(3, 32, 48)
    with pytest.raises(KeyError):
        with VideoWriter(path, 48, 32, 16) as w:
            w.write(frames[0])
            w.write(frames[1])
            # ffmpeg creates the temp file lazily; its name keeps the real suffix
            assert w.temp_path.parent == tmp_path and w.temp_path.suffix == ".mkv"
            assert w.frames_written == 2
            raise KeyError("boom")
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_writer_bad_frame_raises_and_leaves_nothing(tmp_path):
    path = tmp_path / "bad.mp4"
    with pytest.raises(ValueError, match="float32"):
        with VideoWriter(path, 48, 32, 16, codec="h264") as w:
            w.write(np.zeros((32, 48, 3), np.uint8))
            w.write(np.zeros((32, 48, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(32, 40, 3\)"):
        with VideoWriter(tmp_path / "bad.mkv", 48, 32, 16) as w:
            w.write(np.zeros((32, 40, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_writer_does_not_replace_existing_file_on_failure(tmp_path):
    path = tmp_path / "keep.mkv"
    good = _random_frames(2, 16, 16)
    write_video(path, good, 16)
    with pytest.raises(RuntimeError):
        with VideoWriter(path, 16, 16, 16) as w:
            w.write(good[0])
            raise RuntimeError("crash")
    assert video_info(path).frames == 2
    assert _leftovers(tmp_path) == []


def test_writer_ffmpeg_failure_is_reported(tmp_path):
    path = tmp_path / "x.mp4"
    with pytest.raises((RuntimeError, OSError)):
        with VideoWriter(path, 32, 32, 16, codec="h264", preset="no-such-preset") as w:
            w.write(np.zeros((32, 32, 3), np.uint8))
    assert not path.exists() and _leftovers(tmp_path) == []


def test_zero_frames_is_an_error(tmp_path):
    path = tmp_path / "empty.mkv"
    with pytest.raises(ValueError):
        with VideoWriter(path, 16, 16, 16):
            pass
    with pytest.raises(ValueError):
        write_video(path, [], 16)
    assert list(tmp_path.iterdir()) == []


def test_writer_validates_arguments(tmp_path):
    with pytest.raises(ValueError, match="codec"):
        VideoWriter(tmp_path / "a.mkv", 16, 16, 16, codec="vp9")
    with pytest.raises(ValueError, match="mkv"):
        VideoWriter(tmp_path / "a.mp4", 16, 16, 16, codec="ffv1")
    with pytest.raises(ValueError, match="fps"):
        VideoWriter(tmp_path / "a.mkv", 16, 16, 0)
    with pytest.raises(ValueError, match="metadata key"):
        VideoWriter(tmp_path / "a.mkv", 16, 16, 16, metadata={"a=b": "c"})


def test_missing_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        video_info(tmp_path / "nope.mkv")
    with pytest.raises(FileNotFoundError):
        read_frames(tmp_path / "nope.mkv")
    with pytest.raises(FileNotFoundError):
        last_frame(tmp_path / "nope.mkv")


# ----------------------------------------------------------------------------- PNG


def test_png_roundtrip(tmp_path):
    frame = _random_frames(1, 37, 53, seed=9)[0]
    path = tmp_path / "sub" / "f.png"
    assert save_png(path, frame) == path
    loaded = load_png(path)
    assert loaded.dtype == np.uint8 and loaded.shape == (37, 53, 3)
    np.testing.assert_array_equal(loaded, frame)
    assert _leftovers(path.parent) == []
    with pytest.raises(ValueError):
        save_png(tmp_path / "g.png", frame.astype(np.float32))


# ----------------------------------------------------------------------------- atomic helpers


def test_atomic_path_success_and_failure(tmp_path):
    final = tmp_path / "a" / "b" / "x.bin"
    with atomic_path(final) as tmp:
        assert tmp.parent == final.parent and tmp.name.startswith(".x.bin.tmp-")
        assert tmp.suffix == ".bin" and str(os.getpid()) in tmp.name
        tmp.write_bytes(b"hello")
        assert not final.exists()
    assert final.read_bytes() == b"hello"

    with pytest.raises(ZeroDivisionError):
        with atomic_path(final) as tmp:
            tmp.write_bytes(b"partial")
            1 / 0
    assert final.read_bytes() == b"hello"
    assert _leftovers(final.parent) == []


def test_atomic_write_helpers(tmp_path):
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    atomic_write_text(tmp_path / "t.txt", "héllo")
    atomic_write_json(tmp_path / "d" / "j.json", {"b": 1, "a": [1, 2]})
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo"
    text = (tmp_path / "d" / "j.json").read_text()
    assert text.index('"a"') < text.index('"b"') and '\n  "a"' in text
    assert json.loads(text) == {"a": [1, 2], "b": 1}


def test_atomic_dir_publishes_discards_and_cleans_up(tmp_path):
    final = tmp_path / "cache" / "entry"
    with atomic_dir(final) as d:
        assert d.is_dir() and d.parent == final.parent and d != final
        (d / "clip.mkv").write_bytes(b"ours")
        assert not final.exists()
    assert (final / "clip.mkv").read_bytes() == b"ours"

    # another worker finished first: theirs is kept, ours discarded
    with atomic_dir(final) as d:
        (d / "clip.mkv").write_bytes(b"late")
    assert (final / "clip.mkv").read_bytes() == b"ours"

    # failure: temp dir removed, nothing published
    other = tmp_path / "cache" / "other"
    with pytest.raises(RuntimeError):
        with atomic_dir(other) as d:
            (d / "half").write_bytes(b"x")
            raise RuntimeError("crash")
    assert not other.exists()
    assert sorted(p.name for p in final.parent.iterdir()) == ["entry"]


def test_atomic_dir_race_on_rename(tmp_path):
    final = tmp_path / "entry"
    with atomic_dir(final) as d:
        (d / "f").write_text("ours")
        # the other worker publishes while we are still writing
        final.mkdir()
        (final / "f").write_text("theirs")
    assert (final / "f").read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry"]

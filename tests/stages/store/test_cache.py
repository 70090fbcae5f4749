"""The content-addressed cache: atomic publication, checksums verified on read."""

from __future__ import annotations

import logging

import pytest

from stages.store.cache import CacheStore

KEY = "ab" + "0" * 62


def put_entry(store: CacheStore, key: str = KEY, data: bytes = b"pixels" * 100) -> None:
    with store.put("segment", key, {"frames": 3}) as tmp:
        (tmp / "clip.mkv").write_bytes(data)
        (tmp / "last.png").write_bytes(b"png")


def test_put_then_get_returns_the_entry_with_its_info(tmp_path):
    store = CacheStore(tmp_path)
    assert store.get("segment", KEY) is None and not store.has("segment", KEY)
    put_entry(store)
    entry = store.get("segment", KEY)
    assert entry is not None and store.has("segment", KEY)
    assert entry.file("clip.mkv").read_bytes() == b"pixels" * 100
    assert entry.meta["info"] == {"frames": 3}
    assert entry.path == tmp_path / "segment" / "ab" / KEY


@pytest.mark.parametrize("damage", ["flip_byte", "truncate", "delete_file", "bad_meta"])
def test_a_damaged_entry_is_dropped_with_a_warning(tmp_path, caplog, damage):
    store = CacheStore(tmp_path)
    put_entry(store)
    clip = store.entry_dir("segment", KEY) / "clip.mkv"
    if damage == "flip_byte":
        data = bytearray(clip.read_bytes())
        data[10] ^= 0xFF
        clip.write_bytes(bytes(data))
    elif damage == "truncate":
        clip.write_bytes(clip.read_bytes()[:50])
    elif damage == "delete_file":
        clip.unlink()
    else:
        (clip.parent / "meta.json").write_text("{not json")
    with caplog.at_level(logging.WARNING):
        assert store.get("segment", KEY) is None
    assert "damaged" in caplog.text
    assert not store.entry_dir("segment", KEY).exists()  # removed, so it renders again
    put_entry(store)
    assert store.get("segment", KEY) is not None


def test_a_failed_write_publishes_nothing(tmp_path):
    store = CacheStore(tmp_path)
    with pytest.raises(RuntimeError):
        with store.put("segment", KEY) as tmp:
            (tmp / "clip.mkv").write_bytes(b"half")
            raise RuntimeError("crash mid-write")
    assert store.get("segment", KEY) is None
    assert list((tmp_path / "segment" / "ab").iterdir()) == []  # no temp left behind


def test_the_first_publisher_wins(tmp_path):
    store = CacheStore(tmp_path)
    put_entry(store, data=b"first")
    put_entry(store, data=b"second")
    assert store.get("segment", KEY).file("clip.mkv").read_bytes() == b"first"


def test_keys_must_be_hex(tmp_path):
    with pytest.raises(ValueError):
        CacheStore(tmp_path).entry_dir("segment", "../../etc")

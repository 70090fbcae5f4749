"""`python -m flows.cache`: listing by storyboard and pruning that never removes what a kept
storyboard still needs. The cache is built directly (entries under a plan's real keys, with
small files), so no render is needed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from flows.cache import main, parse_age, parse_size, prune
from flows.pipeline.prepare import prepare
from flows.config.settings import RenderSettings
from stages.store.cache import META, CacheStore
from stages.store.cache_refs import KINDS, needed_keys, record_refs

STORYBOARD = """
fps: 8
resolution: 96x64
shots:
  - {id: a, prompt: "kept as is", duration: 1s}
  - {id: b, prompt: "PROMPT_B", frames: 9}
"""
DAY = 86400.0


def add_entry(store: CacheStore, kind: str, key: str, size: int = 1000, age: float = 0.0):
    with store.put(kind, key, {"note": "test"}) as tmp:
        (tmp / "data.bin").write_bytes(b"\0" * size)
    if age:
        stamp = time.time() - age
        os.utime(store.entry_dir(kind, key) / META, (stamp, stamp))


def entries(root: Path) -> set[tuple[str, str]]:
    return {(kind, m.parent.name) for kind in KINDS for m in (root / kind).glob(f"*/*/{META}")
            if not m.parent.name.startswith(".")}


@pytest.fixture
def cache(tmp_path: Path):
    """A cache holding what storyboard `ep` needs (recorded as its last render), entries of an
    older version of shot b, two stale unrelated entries and one recent unrelated entry."""
    root = tmp_path / "cache"
    store = CacheStore(root)
    board = tmp_path / "ep.yaml"
    board.write_text(STORYBOARD)
    settings = RenderSettings(storyboard="ep.yaml", cwd=str(tmp_path), cache_dir=str(root))
    plan = prepare(settings).plan
    for kind, keys in needed_keys(plan).items():
        for key in keys:
            add_entry(store, kind, key)
    record_refs(root, plan, settings.to_dict())
    current = entries(root)
    board.write_text(STORYBOARD.replace("PROMPT_B", "PROMPT_B edited"))
    edited = {(kind, key) for kind, keys in needed_keys(prepare(settings).plan).items()
              for key in keys}
    for kind, key in edited - current:  # the edited storyboard rendered too: now both exist
        add_entry(store, kind, key)
    add_entry(store, "segment", "aa" * 32, age=40 * DAY)
    add_entry(store, "shot", "bb" * 32, size=5000, age=40 * DAY)
    add_entry(store, "segment", "cc" * 32, age=DAY)
    return root, current, edited


def test_list_groups_entries_by_storyboard(cache, capsys):
    root, current, _ = cache
    assert main(["--cache-dir", str(root), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    (group,) = data["storyboards"]
    assert group["storyboard"] == "ep" and group["entries"] == len(current)
    assert data["unrecorded"]["entries"] == data["entries"] - len(current)
    assert main(["--cache-dir", str(root), "list", "--entries"]) == 0
    text = capsys.readouterr().out
    assert "ep" in text and "(no recorded storyboard)" in text and "note=test" in text


def test_prune_by_age_keeps_what_the_storyboard_needs_now(cache, capsys):
    root, _, edited = cache
    assert main(["--cache-dir", str(root), "prune", "--older-than", "30d", "--keep", "ep"]) == 0
    left = entries(root)
    assert ("segment", "aa" * 32) not in left and ("shot", "bb" * 32) not in left
    assert ("segment", "cc" * 32) in left  # a day old: not old enough
    assert edited <= left
    assert "removed 2 entries" in capsys.readouterr().out


def test_prune_by_size_removes_everything_else_but_never_a_needed_entry(cache):
    root, current, edited = cache
    result = prune(root, older_than=None, max_size=1, keep=["ep"], say=lambda line: None)
    assert entries(root) == edited  # even entries of the previous version of shot b went
    assert result["over_budget"] and result["protected"] == len(edited)
    assert current - edited and not (current - edited) & entries(root)


def test_prune_removes_least_recently_used_first(cache):
    root, _, edited = cache
    everything = entries(root)
    # Budget for all but ~2 kB of the unprotected entries: the two oldest go, the recent stays.
    sizes = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()
                and f.parent.parent.parent.name in KINDS)
    result = prune(root, None, sizes - 5000, keep=["ep"], say=lambda line: None)
    removed = {(r["kind"], r["key"]) for r in result["removed"]}
    assert ("shot", "bb" * 32) in removed and ("segment", "cc" * 32) not in removed
    assert entries(root) == everything - removed


def test_dry_run_removes_nothing_and_hits_refresh_last_use(cache):
    root, _, _ = cache
    before = entries(root)
    result = prune(root, older_than=0, max_size=None, dry_run=True, say=lambda line: None)
    assert result["removed"] and entries(root) == before
    store = CacheStore(root)
    meta = store.entry_dir("segment", "aa" * 32) / META
    assert time.time() - meta.stat().st_mtime > 30 * DAY
    assert store.get("segment", "aa" * 32) is not None
    assert time.time() - meta.stat().st_mtime < 60  # used now: last to go in an LRU prune


def test_a_storyboard_that_no_longer_plans_keeps_its_recorded_entries(cache, tmp_path):
    root, current, _ = cache
    (tmp_path / "ep.yaml").write_text("shots: [")  # broken now
    notes = []
    prune(root, None, 1, keep=["ep"], say=notes.append)
    assert current <= entries(root)
    assert any("cannot plan 'ep'" in note for note in notes)


def test_leftovers_of_killed_writes_are_removed_once_old(cache):
    root, _, _ = cache
    old = root / "segment" / "ab" / ".abab.tmp-999999-deadbeef"
    fresh = root / "segment" / "ab" / ".abab.tmp-999998-cafebabe"
    for folder in (old, fresh):
        folder.mkdir(parents=True)
        (folder / "clip.mkv").write_bytes(b"partial")
    stamp = time.time() - 2 * 3600
    os.utime(old, (stamp, stamp))
    result = prune(root, older_than=1e9, max_size=None, say=lambda line: None)
    assert result["leftovers_removed"] == 1 and not old.exists() and fresh.exists()


def test_arguments_and_errors(tmp_path, capsys):
    assert parse_age("30d") == 30 * DAY and parse_age("90m") == 5400 and parse_age("10") == 10
    assert parse_size("20GB") == 20 * 10**9 and parse_size("1.5m") == 1_500_000
    assert main(["--cache-dir", str(tmp_path / "none")]) == 2
    (tmp_path / "c").mkdir()
    assert main(["--cache-dir", str(tmp_path / "c"), "prune"]) == 2
    assert "say what to prune" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--cache-dir", str(tmp_path / "c"), "prune", "--older-than", "soon"])


def test_the_soundtrack_analysis_is_a_cache_entry_kept_while_its_storyboard_is(tmp_path):
    """`audio.reactive`'s analysis lives in the cache like every entry: a kept storyboard's
    analysis survives a prune, an unkept one goes by age like the rest."""
    from tests.stages.audio.synth import kick_track

    root = tmp_path / "cache"
    kick_track(tmp_path / "music.wav", [0.25, 0.75, 1.25], 2.0)
    (tmp_path / "ep.yaml").write_text(STORYBOARD + """
audio:
  path: music.wav
  reactive:
    - {param: zoom, source: beats, amount: 0.04}
""")
    settings = RenderSettings(storyboard="ep.yaml", cwd=str(tmp_path), cache_dir=str(root))
    plan = prepare(settings).plan  # validation analyses the soundtrack into the cache
    [key] = needed_keys(plan)["audio_analysis"]
    assert ("audio_analysis", key) in entries(root)
    record_refs(root, plan, settings.to_dict())
    meta = CacheStore(root).entry_dir("audio_analysis", key) / META
    stamp = time.time() - 40 * DAY
    os.utime(meta, (stamp, stamp))
    prune(root, older_than=30 * DAY, max_size=None, keep=["ep"], say=lambda line: None)
    assert ("audio_analysis", key) in entries(root)
    os.utime(meta, (stamp, stamp))
    result = prune(root, older_than=30 * DAY, max_size=None, say=lambda line: None)
    assert ("audio_analysis", key) not in entries(root)
    assert {"kind": "audio_analysis", "key": key} in [
        {k: r[k] for k in ("kind", "key")} for r in result["removed"]]

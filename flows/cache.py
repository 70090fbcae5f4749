"""`python -m flows.cache`: what the render cache holds, by storyboard, and pruning it.

    python -m flows.cache                              # size and entries by storyboard
    python -m flows.cache list --entries               # ... and every entry
    python -m flows.cache prune --older-than 30d --keep ep01
    python -m flows.cache prune --max-size 20GB --keep-all --dry-run

`prune` removes entries unused for longer than --older-than, then the least recently used ones
until the cache fits in --max-size, but never an entry that a --keep storyboard still needs: each
kept storyboard is planned again, as it is now, with the settings of its last render recorded in
the cache (`<cache>/refs/`), and every entry of that plan is kept. It also removes what crashed
or killed renders left behind (hidden temp folders of unfinished writes).

The cache is `--cache-dir`, else `<--output-dir>/.cache` (default `renders/.cache`), as for
`python -m flows.render`. Pruning while a render runs on the same cache is safe for the entries
that render needs only if it is kept (--keep); anything else it reads may be rendered again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from stages.store.cache import META, CacheStore
from stages.store.cache_refs import KINDS, load_refs, needed_keys
from stages.store.temp_names import FOREIGN_LEFTOVER_AGE_S, is_leftover_name, leftover_is_dead

# A leftover of a writer in another container or machine, younger than this, may belong to a
# render that is running right now (one of a dead process of this PID namespace goes at once).
LEFTOVER_MIN_AGE_S = FOREIGN_LEFTOVER_AGE_S

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$", re.I)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|k|kb|m|mb|g|gb|t|tb)?\s*$", re.I)
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE_UNITS = {"b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9,
               "t": 1e12, "tb": 1e12}


def parse_age(text: str) -> float:
    """'30d', '12h', '90m', '3600' (seconds) -> seconds."""
    match = _AGE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not an age; use e.g. 30d, 12h, 90m")
    return float(match.group(1)) * _AGE_UNITS[(match.group(2) or "s").lower()]


def parse_size(text: str) -> int:
    """'20GB', '500MB', '1.5g', '1000' (bytes) -> bytes (decimal units)."""
    match = _SIZE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; use e.g. 20GB, 500MB")
    return int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()])


def human(count: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:,.0f} {unit}" if unit == "B" else f"{count:,.1f} {unit}"
        count /= 1000
    return f"{count} B"


@dataclass
class Entry:
    kind: str
    key: str
    path: Path
    size: int
    used: float  # last use: meta.json's modification time (touched on every cache hit)
    info: dict[str, Any] = field(default_factory=dict)
    storyboards: set[str] = field(default_factory=set)


def _dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).lstat().st_size
            except OSError:
                pass
    return total


def scan(root: Path) -> tuple[list[Entry], list[Path]]:
    """Every published entry, and every leftover of an unfinished write."""
    entries: list[Entry] = []
    leftovers: list[Path] = []
    for kind in KINDS:
        kind_dir = root / kind
        if not kind_dir.is_dir():
            continue
        for shard in sorted(kind_dir.iterdir()):
            if is_leftover_name(shard.name):
                leftovers.append(shard)
                continue
            if not shard.is_dir():
                continue
            for entry_dir in sorted(shard.iterdir()):
                if is_leftover_name(entry_dir.name):
                    leftovers.append(entry_dir)
                    continue
                meta_path = entry_dir / META
                try:
                    used = meta_path.stat().st_mtime
                    info = json.loads(meta_path.read_text(encoding="utf-8")).get("info") or {}
                except (OSError, ValueError, AttributeError):
                    # No meta.json: not a finished entry (a crash between writes never leaves
                    # one under a final name, but a hand-made folder could).
                    leftovers.append(entry_dir)
                    continue
                entries.append(Entry(kind, entry_dir.name, entry_dir, _dir_size(entry_dir), used,
                                     info if isinstance(info, dict) else {}))
    return entries, leftovers


def _attach_storyboards(entries: list[Entry], records: list[dict[str, Any]]) -> None:
    by_key = {(e.kind, e.key): e for e in entries}
    for record in records:
        label = record.get("storyboard", "?") + (f"@{record['variant']}" if record.get("variant")
                                                 else "")
        for kind, keys in record["keys"].items():
            for key in keys:
                entry = by_key.get((kind, key))
                if entry is not None:
                    entry.storyboards.add(label)


# -- listing -------------------------------------------------------------------------------------


def summary(root: Path) -> dict[str, Any]:
    entries, leftovers = scan(root)
    records = load_refs(root)
    _attach_storyboards(entries, records)
    groups: dict[str, dict[str, Any]] = {}
    for record in records:
        label = record.get("storyboard", "?") + (f"@{record['variant']}" if record.get("variant")
                                                 else "")
        groups[label] = {"storyboard": label, "last_render": record.get("rendered"),
                         "file": record.get("file"), "entries": 0, "bytes": 0, "own_bytes": 0,
                         "kinds": {}}
    orphans = {"entries": 0, "bytes": 0}
    for entry in entries:
        if not entry.storyboards:
            orphans["entries"] += 1
            orphans["bytes"] += entry.size
        for label in entry.storyboards:
            group = groups[label]
            group["entries"] += 1
            group["bytes"] += entry.size
            group["kinds"][entry.kind] = group["kinds"].get(entry.kind, 0) + 1
            if len(entry.storyboards) == 1:
                group["own_bytes"] += entry.size
    return {
        "cache": str(root),
        "entries": len(entries),
        "bytes": sum(e.size for e in entries),
        "storyboards": sorted(groups.values(), key=lambda g: g["storyboard"]),
        "unrecorded": orphans,
        "leftovers": {"count": len(leftovers), "bytes": sum(_dir_size(p) if p.is_dir() else
                                                             p.stat().st_size for p in leftovers)},
        "entry_list": [
            {"kind": e.kind, "key": e.key, "bytes": e.size, "last_used": e.used,
             "storyboards": sorted(e.storyboards), "info": e.info} for e in entries
        ],
    }


def print_summary(data: dict[str, Any], entries: bool) -> None:
    print(f"Cache {data['cache']}: {data['entries']} entries, {human(data['bytes'])}")
    if data["storyboards"] or data["unrecorded"]["entries"]:
        print(f"  {'storyboard':<28}{'last render':<27}{'entries':>8}{'size':>12}"
              f"{'only its own':>14}")
    for group in data["storyboards"]:
        print(f"  {group['storyboard']:<28}{group['last_render'] or '-':<27}"
              f"{group['entries']:>8}{human(group['bytes']):>12}{human(group['own_bytes']):>14}")
    orphans = data["unrecorded"]
    if orphans["entries"]:
        print(f"  {'(no recorded storyboard)':<28}{'':<27}{orphans['entries']:>8}"
              f"{human(orphans['bytes']):>12}")
    left = data["leftovers"]
    if left["count"]:
        print(f"  {left['count']} leftovers of interrupted writes ({human(left['bytes'])}); "
              "`prune` removes them")
    if entries:
        now = time.time()
        for e in sorted(data["entry_list"], key=lambda e: (e["kind"], -e["last_used"])):
            what = ", ".join(f"{k}={v}" for k, v in e["info"].items())
            print(f"  {e['kind']:<12}{e['key'][:16]}  {human(e['bytes']):>10}  used "
                  f"{(now - e['last_used']) / 3600:7.1f}h ago  "
                  f"{', '.join(e['storyboards']) or '-':<20} {what}")


# -- pruning -------------------------------------------------------------------------------------


def _settings_for(record: dict[str, Any]):
    from flows.config.settings import RenderSettings

    known = {f.name for f in dataclasses.fields(RenderSettings)}
    data = {k: v for k, v in (record.get("settings") or {}).items() if k in known}
    return RenderSettings.from_dict(data)


def protected_keys(root: Path, keep: Iterable[str], keep_all: bool,
                   say=print) -> set[tuple[str, str]]:
    """(kind, key) of every entry a kept storyboard needs as it is now."""
    from flows.pipeline.prepare import prepare
    from flows.config.settings import RenderSettings

    records = load_refs(root)
    wanted = set(keep)
    chosen = [r for r in records if keep_all or r.get("storyboard") in wanted
              or Path(r.get("file") or "").stem in wanted]
    found = {r.get("storyboard") for r in chosen} | {Path(r.get("file") or "").stem
                                                      for r in chosen}
    plans_for: list[tuple[str, Any, set]] = []
    for record in chosen:
        recorded = {(kind, key) for kind, keys in record["keys"].items() for key in keys}
        plans_for.append((record.get("storyboard", "?"), _settings_for(record), recorded))
    for name in sorted(wanted - found):
        say(f"note: no render of {name!r} is recorded in this cache; keeping what a default "
            "render of it (engine preview) needs")
        plans_for.append((name, RenderSettings(storyboard=name, cwd=os.getcwd(),
                                               cache_dir=str(root)), set()))
    keys: set[tuple[str, str]] = set()
    for name, settings, recorded in plans_for:
        try:
            plan = prepare(settings).plan
        except Exception as exc:  # noqa: BLE001 - invalid or moved: keep what it last used
            say(f"note: cannot plan {name!r} now ({str(exc).splitlines()[0]}); keeping every "
                "entry its last render used")
            keys |= recorded
            continue
        keys |= {(kind, key) for kind, ks in needed_keys(plan).items() for key in ks}
    return keys


def prune(root: Path, older_than: float | None, max_size: int | None, keep: Iterable[str] = (),
          keep_all: bool = False, dry_run: bool = False, now: float | None = None,
          say=print) -> dict[str, Any]:
    now = time.time() if now is None else now
    entries, leftovers = scan(root)
    protected = protected_keys(root, keep, keep_all, say)
    candidates = sorted((e for e in entries if (e.kind, e.key) not in protected),
                        key=lambda e: e.used)  # least recently used first
    doomed: list[Entry] = []
    if older_than is not None:
        doomed = [e for e in candidates if now - e.used > older_than]
    if max_size is not None:
        remaining = sum(e.size for e in entries) - sum(e.size for e in doomed)
        for entry in candidates:
            if remaining <= max_size:
                break
            if entry not in doomed:
                doomed.append(entry)
                remaining -= entry.size
    stale = [p for p in leftovers if is_leftover_name(p.name) and leftover_is_dead(
        p, now=now, foreign_age_s=LEFTOVER_MIN_AGE_S)
        or not is_leftover_name(p.name) and now - p.lstat().st_mtime > LEFTOVER_MIN_AGE_S]
    store = CacheStore(root)
    if not dry_run:
        for entry in doomed:
            store.remove(entry.kind, entry.key)
        for path in stale:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    kept_size = sum(e.size for e in entries) - sum(e.size for e in doomed)
    return {
        "removed": [{"kind": e.kind, "key": e.key, "bytes": e.size} for e in doomed],
        "removed_bytes": sum(e.size for e in doomed),
        "protected": sum(1 for e in entries if (e.kind, e.key) in protected),
        "leftovers_removed": len(stale),
        "remaining_bytes": kept_size,
        "over_budget": max_size is not None and kept_size > max_size,
        "dry_run": dry_run,
    }


def _cache_root(args: argparse.Namespace) -> Path:
    if args.cache_dir:
        return Path(args.cache_dir).resolve()
    return (Path(args.output_dir) / ".cache").resolve()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.cache", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", help="the cache folder (default <output-dir>/.cache)")
    parser.add_argument("--output-dir", default="renders", help="as output_dir= of a render")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    commands = parser.add_subparsers(dest="command")
    listing = commands.add_parser("list", help="size and entries by storyboard (the default)")
    listing.add_argument("--entries", action="store_true", help="also list every entry")
    pruning = commands.add_parser("prune", help="remove old entries or trim to a size")
    pruning.add_argument("--older-than", type=parse_age, metavar="AGE",
                         help="remove entries unused for longer than AGE (30d, 12h, ...)")
    pruning.add_argument("--max-size", type=parse_size, metavar="SIZE",
                         help="then remove least recently used entries until the cache fits")
    pruning.add_argument("--keep", action="append", default=[], metavar="STORYBOARD",
                         help="never remove what this storyboard needs now (repeatable)")
    pruning.add_argument("--keep-all", action="store_true",
                         help="keep what every storyboard rendered into this cache needs now")
    pruning.add_argument("--dry-run", action="store_true", help="say what would go; remove nothing")
    args = parser.parse_args(argv)
    root = _cache_root(args)
    if not root.is_dir():
        print(f"error: no cache at {root} (give --cache-dir or --output-dir)", file=sys.stderr)
        return 2
    if args.command == "prune":
        if args.older_than is None and args.max_size is None:
            print("error: say what to prune: --older-than AGE and/or --max-size SIZE",
                  file=sys.stderr)
            return 2
        say = (lambda line: print(line, file=sys.stderr)) if args.json else print
        result = prune(root, args.older_than, args.max_size, args.keep, args.keep_all,
                       args.dry_run, say=say)
        if args.json:
            print(json.dumps(result, indent=2))
            return 0
        verb = "would remove" if args.dry_run else "removed"
        print(f"{verb} {len(result['removed'])} entries ({human(result['removed_bytes'])}) and "
              f"{result['leftovers_removed']} leftovers; kept {result['protected']} entries "
              f"that kept storyboards need; the cache now holds "
              f"{human(result['remaining_bytes'])}")
        if result["over_budget"]:
            print("note: still over --max-size: the rest is needed by kept storyboards")
        return 0
    data = summary(root)
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        print_summary(data, getattr(args, "entries", False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m flows.compare storyboard=NAME`: the engines of a multirun, side by side.

After `python -m flows.render -m storyboard=ep01 engine=preview,wan21_t2v`, each engine's
render sits in renders/ep01/<overrides>/ (e.g. renders/ep01/engine=preview/). This writes
renders/ep01/compare.mp4 (the episodes side by side, each labelled with its overrides) and
renders/ep01/compare.md (wall time per segment for each), and prints the table.

Options (key=value): storyboard=NAME (required), output_dir=renders, variants=[a,b] (folder
names under renders/NAME/; default: every folder there with a manifest.json), height=240.
Exit status 0, or 2 with a message when there is nothing to compare.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from stages.media.atomic import atomic_write_text
from stages.outputs.compare import Variant, side_by_side, timing_table

USAGE = ("usage: python -m flows.compare storyboard=NAME [output_dir=renders] "
         "[variants=[a,b]] [height=240]")


def parse_args(argv: list[str]) -> dict[str, str]:
    args: dict[str, str] = {}
    for token in argv:
        key, sep, value = token.partition("=")
        if not sep or key not in ("storyboard", "output_dir", "variants", "height"):
            raise ValueError(f"unknown argument {token!r}; {USAGE}")
        args[key] = value
    if not args.get("storyboard"):
        raise ValueError(f"storyboard= is required; {USAGE}")
    return args


def find_variants(folder: Path, names: list[str] | None) -> list[Variant]:
    if names:
        dirs = [folder / n for n in names]
        missing = [str(d) for d in dirs if not (d / "manifest.json").is_file()]
        if missing:
            raise ValueError(f"no finished render in {', '.join(missing)}")
    else:
        dirs = sorted(d for d in folder.iterdir() if (d / "manifest.json").is_file()) \
            if folder.is_dir() else []
    variants = []
    for d in dirs:
        manifest = json.loads((d / "manifest.json").read_text())
        variants.append(Variant(label=d.name, video=d / manifest["video"], manifest=manifest))
    return variants


def main(argv: list[str]) -> int:
    try:
        args = parse_args(argv)
        name = args["storyboard"]
        folder = Path(args.get("output_dir", "renders")) / name
        names = [n.strip() for n in args.get("variants", "").strip("[]").split(",") if n.strip()]
        variants = find_variants(folder, names or None)
        if len(variants) < 1:
            raise ValueError(f"no rendered variants under {folder}; run e.g. python -m "
                             f"flows.render -m storyboard={name} engine=preview,svd first")
        height = int(args.get("height", 240))
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    video = side_by_side(variants, folder / "compare.mp4", height=height)
    table = timing_table(variants)
    atomic_write_text(folder / "compare.md", f"# {name}: engines compared\n\n{table}")
    print(table)
    print(f"Side by side: {video}\nTable: {folder / 'compare.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

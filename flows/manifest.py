"""`python -m flows.manifest VIDEO.mp4`: print the manifest a render embedded in its video.

Every episode carries its manifest (storyboard hash and text, resolved config, engine identity
and model revision, seeds and cache keys of every segment, package versions) in its MP4 metadata,
so a video found anywhere can be traced and re-rendered. It is manifest.json less what only
describes one run (timings, cache hits, the date), so re-rendering from the cache gives the very
same file:

    python -m flows.manifest renders/ep01/ep01.mp4                  # the manifest as JSON
    python -m flows.manifest ep01.mp4 --storyboard ep01_again.yaml  # also write the storyboard
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from stages.outputs.manifest import VIDEO_TAG
from stages.media.video_io import read_metadata


class NoManifest(ValueError):
    """The video carries no reelforge manifest."""


def read_video_manifest(video: Path | str) -> dict[str, Any]:
    """The manifest embedded in `video`; NoManifest if there is none (or it is damaged)."""
    tags = read_metadata(video)
    text = tags.get(VIDEO_TAG)
    if text is None:
        raise NoManifest(f"{video} carries no reelforge manifest (tags: "
                         f"{', '.join(sorted(tags)) or 'none'}); was it re-encoded by another "
                         "program?")
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NoManifest(f"{video}: the embedded manifest is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise NoManifest(f"{video}: the embedded manifest is not a JSON object")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.manifest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", help="an episode video written by flows.render")
    parser.add_argument("--storyboard", metavar="FILE",
                        help="also write the embedded storyboard YAML to FILE")
    args = parser.parse_args(argv)
    try:
        manifest = read_video_manifest(args.video)
    except (NoManifest, FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.storyboard:
        text = manifest.get("storyboard_yaml")
        if text is None:
            print("error: the manifest holds no storyboard text", file=sys.stderr)
            return 1
        Path(args.storyboard).write_text(text, encoding="utf-8")
    json.dump(manifest, sys.stdout, indent=2, sort_keys=True, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

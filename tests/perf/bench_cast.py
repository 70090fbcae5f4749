"""Identity consistency of a cast member across shots (a benchmark, not a timed test):
renders tests/helpers/cast_boards.CAST_BOARD on the preview and prints, per shot, how present
the keeper's reference pattern is in its frames (1.0: exactly the reference; see identity_score).

    python -m tests.perf.bench_cast
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from flows.config.settings import RenderSettings
    from flows.render import run
    from stages.media.video_io import read_frames
    from tests.helpers.cast_boards import identity_score, pattern_image, write_cast_board

    root = Path(tempfile.mkdtemp(prefix="bench-cast-"))
    path = write_cast_board(root / "project")
    run(RenderSettings(storyboard=str(path), output_dir=str(root / "renders"),
                       engine={"name": "preview", "params": {}}, post=[], workers=2))
    reference = pattern_image()
    for shot_id in ("s01", "s02", "s03"):
        frames = list(read_frames(root / "renders" / "cast" / "shots" / f"{shot_id}.mp4"))
        score = float(np.mean([identity_score(f, reference) for f in frames]))
        print(f"{shot_id}: identity {score:.3f} over {len(frames)} frames", file=sys.__stdout__)


if __name__ == "__main__":
    main()

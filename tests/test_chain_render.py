"""Chain modes through the real flow (`flows.render.run`) on the synthetic continuation engine
(tests/chain_engine.py): overlap joins, colour matching against the anchor, prompt schedules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flows.render import EXIT_OK, run
from flows.settings import RenderSettings
from stages.color_drift import mean_delta_e
from stages.overlap_join import seam_ratios
from stages.video_io import load_png, read_frames
from tests import chain_engine
from tests.conftest import write_png

pytestmark = pytest.mark.usefixtures("prefect_harness")

BOARD = """
fps: 16
resolution: 96x64
seed: 3
shots:
  - id: a
    image: start.png
    prompt: a slow pan
    segments: [{{frames: 33}}, {{frames: 33}}, {{frames: 33}}]
    chain: {chain}
"""


@pytest.fixture(autouse=True)
def engines():
    chain_engine.register_engines()


def render(tmp_path: Path, chain: str, engine: str = "continuation", board: str = BOARD,
           params: dict | None = None, **kw) -> tuple[Path, dict]:
    root = tmp_path / f"{engine}-{abs(hash(chain))}"
    root.mkdir(parents=True, exist_ok=True)
    write_png(root / "start.png", 96, 64, seed=5)
    (root / "ep.yaml").write_text(board.format(chain=chain))
    out = root / "renders"
    settings = RenderSettings(storyboard=str(root / "ep.yaml"), output_dir=str(out), post=[],
                              retry_delay=0.0, workers=2,
                              engine={"name": engine, "options": {}, "params": params or {}},
                              **kw)
    assert run(settings) == EXIT_OK
    return out / "ep", json.loads((out / "ep" / "manifest.json").read_text())


def window_seam(frames: list[np.ndarray], boundaries: list[int], half: int) -> float:
    """The worst frame step within `half` frames of any boundary, over the median elsewhere."""
    steps = sorted({b + d for b in boundaries for d in range(-half, half + 1)
                    if 1 <= b + d < len(frames)})
    return max(seam_ratios(frames, steps))


def test_overlap_joins_segments_and_beats_last_frame_on_the_seam(tmp_path, monkeypatch):
    seen = []
    original = chain_engine.ContinuationEngine.generate

    def spy(self, request, progress=None):
        seen.append(request)
        return original(self, request, progress)

    monkeypatch.setattr(chain_engine.ContinuationEngine, "generate", spy)
    folder, m = render(tmp_path, "{mode: overlap, overlap: 8, color_match: none}")
    # 33 + (33 - 8) + (33 - 8) frames, in the manifest and in the shot video.
    assert m["shots"][0]["frames"] == 83
    overlap_frames = list(read_frames(folder / "shots" / "a.mp4"))
    assert len(overlap_frames) == 83
    # Segment 1 got segment 0's last 8 frames as context and starts on the first of them.
    first = {r.segment_index: r for r in seen}
    assert first[1].context_frames.shape == (8, 64, 96, 3)
    assert np.array_equal(first[1].start_image, first[1].context_frames[0])
    assert first[0].context_frames is None

    _, m_plain = render(tmp_path, "{mode: last_frame, color_match: none}")
    plain_frames = list(read_frames(folder.parent.parent.parent
                                    / next(p.name for p in tmp_path.iterdir()
                                           if p.name != folder.parent.parent.name)
                                    / "renders" / "ep" / "shots" / "a.mp4"))
    assert len(plain_frames) == 33 + 32 + 32
    overlap_seam = window_seam(overlap_frames, [33 - 8, 33 + 25 - 8], 8)
    plain_seam = window_seam(plain_frames, [33, 65], 8)
    assert overlap_seam < plain_seam, (overlap_seam, plain_seam)


def test_color_match_anchor_holds_the_colours_of_a_drifting_chain(tmp_path):
    board = BOARD.replace("[{{frames: 33}}, {{frames: 33}}, {{frames: 33}}]",
                          "[" + ", ".join(["{{frames: 17}}"] * 5) + "]")
    drifts = {}
    for mode in ("none", "anchor"):
        # A still camera and no re-render jump: what changes is the colour alone.
        folder, m = render(tmp_path / mode, f"{{mode: last_frame, color_match: {mode}}}",
                           board=board, params={"drift": 0.04, "speed": 0.0, "jump": 0.0})
        frames = folder / "frames"
        start = load_png(folder.parent.parent / "start.png")
        drifts[mode] = [mean_delta_e(load_png(frames / f"a_{i}_last.png"), start)
                        for i in range(5)]
    # Without colour matching the cast compounds segment after segment ...
    assert drifts["none"][-1] > drifts["none"][0] * 2
    # ... with it, every later segment ends at most as far from the anchor as the first.
    assert max(drifts["anchor"][1:]) < drifts["none"][-1] / 2
    assert drifts["anchor"][-1] <= drifts["anchor"][0] * 1.5

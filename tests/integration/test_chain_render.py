"""Chain modes through the real flow (`flows.render.run`) on the synthetic continuation engine
(tests/helpers/chain_engine.py): overlap joins, colour matching against the anchor, prompt
schedules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flows.render import EXIT_OK, run
from flows.config.settings import RenderSettings
from tests.helpers.color_metrics import mean_delta_e
from stages.render.overlap_join import seam_window_score
from stages.media.video_io import load_png, read_frames
from engine.preview import PREVIEW_SPEC
from tests.helpers import chain_engine
from tests.helpers.synthetic import write_png

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

    plain_folder, _ = render(tmp_path, "{mode: last_frame, color_match: none}")
    plain_frames = list(read_frames(plain_folder / "shots" / "a.mp4"))
    assert len(plain_frames) == 33 + 32 + 32
    overlap_seam = seam_window_score(overlap_frames, [33 - 8, 33 + 25 - 8], 8)
    plain_seam = seam_window_score(plain_frames, [33, 65], 8)
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


TRANSITION_BOARD = """
fps: 16
resolution: 96x64
seed: 4
shots:
  - {{id: a, prompt: "the cliff", frames: 17, transition: {{type: generated, duration: 1s}}}}
  - {{id: b, prompt: "the boat", frames: 17, {b_start}}}
"""


@pytest.mark.parametrize("b_start", ["seed: 9", "image: start.png"])
def test_generated_transition_bridges_last_frame_to_next_first_frame(tmp_path, monkeypatch,
                                                                     b_start):
    from engine.preview import PreviewEngine

    seen = {}
    original = PreviewEngine.generate

    def spy(self, request, progress=None):
        frames = original(self, request, progress)
        seen[(request.shot_id, request.segment_index)] = (request, frames)
        return frames

    monkeypatch.setattr(PreviewEngine, "generate", spy)
    folder, m = render(tmp_path, "", engine="preview",
                       board=TRANSITION_BOARD.replace("{b_start}", b_start))
    assert [s["id"] for s in m["shots"]] == ["a", "a__b", "b"]
    assert [s["bridge"] for s in m["shots"]] == [False, True, False]
    bridge, frames = seen[("a__b", 0)]
    # 1 s at 16 fps plus the two frames it starts and ends on, snapped to 4n+1: 17 frames,
    # of which the 15 in between reach the episode.
    assert bridge.num_frames == 17 and m["shots"][1]["frames"] == 15
    assert np.array_equal(bridge.start_image, seen[("a", 0)][1][-1])
    assert np.array_equal(bridge.end_image, seen[("b", 0)][1][0])
    assert m["frames"] == 17 + 15 + 17
    assert len(list(read_frames(folder / "ep.mp4"))) == m["frames"]


def test_generated_transition_needs_a_first_last_frame_engine(tmp_path):
    from stages.storyboard.problems import StoryboardInvalid
    from stages.storyboard.validate import ValidateOptions, validate_storyboard
    from engine.diffusers.families import DIFFUSERS_SPECS

    path = tmp_path / "ep.yaml"
    path.write_text(TRANSITION_BOARD.replace("{b_start}", "seed: 1").replace("{{", "{")
                    .replace("}}", "}"))
    with pytest.raises(StoryboardInvalid) as err:
        validate_storyboard(path, DIFFUSERS_SPECS["wan21_t2v"][0], ValidateOptions())
    assert "shots[0].transition.type" in str(err.value) and "first to a last frame" in str(err.value)
    chained = tmp_path / "chained.yaml"
    chained.write_text(TRANSITION_BOARD.replace("{b_start}", "start: chain").replace("{{", "{")
                       .replace("}}", "}"))
    with pytest.raises(StoryboardInvalid) as err:
        validate_storyboard(chained, PREVIEW_SPEC, ValidateOptions())
    assert "no gap to bridge" in str(err.value)

"""A control video through the tiny Wan VACE pipeline: the extracted frames are the `video` of
the frames to generate (mask 1), known frames keep theirs (mask 0), and the strength is the
pipeline's conditioning_scale; from a storyboard through the planner and render_segment too."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.base import EngineError
from engine.diffusers.model_pool import ModelPool
from engine.registry import engine_spec, get_engine
from stages.control.clip import CLIP
from stages.media.video_io import read_frames
from stages.plan.build import build_plan
from stages.render.steps import render_segment
from stages.store.cache import CacheStore
from stages.storyboard.validate import validate_storyboard
from tests.helpers import tiny_pipelines as tiny
from tests.helpers.control_clips import write_square_clip

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def vace(tmp_path_factory):
    folder = tiny.save_wan_vace(tmp_path_factory.mktemp("vace") / "wan-vace")
    return get_engine("wan_vace", model=str(folder), pool=ModelPool())


@pytest.fixture
def calls(monkeypatch):
    import diffusers

    seen: list[dict] = []
    original = diffusers.WanVACEPipeline.__call__
    monkeypatch.setattr(diffusers.WanVACEPipeline, "__call__",
                        lambda self, *a, **kw: seen.append(kw) or original(self, *a, **kw))
    return seen


def test_control_frames_are_the_video_to_generate_at_its_strength(vace, calls):
    control = np.stack([tiny.random_image(20 + i) for i in range(9)])
    start = tiny.random_image(1)
    frames = vace.generate(tiny.tiny_request(start_image=start, control_video=control,
                                             control_strength=0.8))
    assert frames.shape == (9, 64, 64, 3)
    call = calls[-1]
    assert call["conditioning_scale"] == pytest.approx(0.8)
    video, mask = call["video"], call["mask"]
    assert np.array_equal(np.asarray(video[0]), start) and np.asarray(mask[0]).max() == 0
    for index in range(1, 9):
        assert np.array_equal(np.asarray(video[index]), control[index])
        assert np.asarray(mask[index]).min() == 255
    with pytest.raises(EngineError, match="control_video has.*uint8 \\(9, 64, 64, 3\\)"):
        vace.generate(tiny.tiny_request(control_video=control[:5]))


def test_without_control_the_configured_scale_stays(vace, calls):
    vace.generate(tiny.tiny_request())
    assert calls[-1]["conditioning_scale"] == 1.0
    assert all(np.asarray(v).max() == 127 for v in calls[-1]["video"])  # t2v: grey


def test_a_storyboard_control_reaches_the_pipeline(vace, calls, tmp_path):
    write_square_clip(tmp_path / "dance.mp4", frames=16, fps=16, width=64, height=64)
    (tmp_path / "ep.yaml").write_text(
        "fps: 16\nresolution: 64x64\nshots:\n"
        "  - {id: s05, prompt: dance, frames: 9, steps: 2,\n"
        "     control: {video: dance.mp4, kind: gray, strength: 0.6, start: 0.25s}}\n")
    vs = validate_storyboard(tmp_path / "ep.yaml", engine_spec("wan_vace"))
    job = build_plan(vs, vace.identity()).shots[0].segments[0]
    store = CacheStore(tmp_path / "cache")
    result = render_segment(job, None, vace, store)
    assert result.frames == 9 and not result.cached
    call = calls[-1]
    assert call["conditioning_scale"] == pytest.approx(0.6)
    extracted = [e for e in (tmp_path / "cache" / "control").rglob(CLIP)]
    control = np.stack(list(read_frames(extracted[0])))
    assert control.shape == (9, 64, 64, 3)
    assert np.array_equal(control[..., 0], control[..., 2])  # gray
    for index in range(9):
        assert np.array_equal(np.asarray(call["video"][index]), control[index])


def test_a_depth_move_reaches_vace_as_the_depth_warped_guide(vace, calls):
    """2.5D moves on wan_vace: the frames to generate carry the start image warped through its
    depth map (parallax and occlusion), not the flat homography."""
    from engine.base import CameraState
    from engine.depth.warp import depth_guide

    start = tiny.random_image(3)
    near = np.zeros((64, 64), np.float32)
    near[16:48, 16:48] = 0.9  # a near square on a far wall
    path = tuple(CameraState(truck=0.03 * i) for i in range(9))
    vace.generate(tiny.tiny_request(start_image=start, camera=path, depth=near))
    video = [np.asarray(frame) for frame in calls[-1]["video"]]
    want = depth_guide(start, near, path)
    assert all(np.array_equal(a, b) for a, b in zip(video[1:], want[1:]))
    assert not np.array_equal(video[-1], start)  # it moved

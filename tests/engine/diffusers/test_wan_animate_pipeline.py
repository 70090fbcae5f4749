"""wan_animate on a tiny random-weight WanAnimatePipeline saved with save_pretrained and loaded
through `engine.model=<folder>`: a shot longer than one window is one pipeline call, every
window is conditioned on the same reference image, the face track's crops reach the call at
the transformer's motion_encoder_size, and the planned frame count comes back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.diffusers.model_pool import ModelPool
from engine.registry import get_engine
from tests.helpers import tiny_pipelines as tiny

torch.set_num_threads(1)

FACE = 16  # the tiny transformer's motion_encoder_size


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny.save_wan_animate(tmp_path_factory.mktemp("models") / "wan-animate", FACE)


def driving(n: int, size: int = 32) -> np.ndarray:
    """A bright square moving across a dark frame: a stand-in pose video."""
    frames = np.zeros((n, size, size, 3), np.uint8)
    for i in range(n):
        x = (i * 2) % (size - 8)
        frames[i, 8:16, x:x + 8] = 230
    return frames


def test_a_long_animate_shot_is_one_call_on_one_reference(model, monkeypatch):
    from diffusers import WanAnimatePipeline

    calls: list[dict] = []
    original = WanAnimatePipeline.__call__

    def spy(pipe, *args, **kwargs):
        calls.append(kwargs)
        refs: list[torch.Tensor] = []
        windows: list[int] = []
        # Every denoiser call sees the reference latents (channels after the noise, frame 0):
        # the same tensor in every window.
        hook = pipe.transformer.register_forward_pre_hook(
            lambda mod, args, kw: refs.append(kw["hidden_states"][:, 16:, 0].clone()),
            with_kwargs=True)
        prev = pipe.prepare_prev_segment_cond_latents

        def per_window(*a, **kw):
            windows.append(1)
            return prev(*a, **kw)

        pipe.prepare_prev_segment_cond_latents = per_window
        try:
            out = original(pipe, *args, **kwargs)
        finally:
            hook.remove()
            del pipe.prepare_prev_segment_cond_latents
        kwargs["_refs"], kwargs["_windows"] = refs, len(windows)
        return out

    monkeypatch.setattr(WanAnimatePipeline, "__call__", spy)
    engine = get_engine("wan_animate", model=str(model), pool=ModelPool())
    frames_wanted = 81  # more than one 77-frame window
    reference = tiny.random_image(5)[:32, :32]
    request = tiny.tiny_request(num_frames=frames_wanted, width=32, height=32,
                                start_image=reference, driving_video=driving(frames_wanted),
                                fps=30, params={"steps": 1})
    frames = engine.generate(request)

    assert frames.shape == (frames_wanted, 32, 32, 3) and frames.dtype == np.uint8
    assert len(calls) == 1  # the whole shot, one call
    kwargs = calls[0]
    assert kwargs["segment_frame_length"] == 77 and kwargs["mode"] == "animate"
    assert kwargs["_windows"] == 2  # the pipeline windowed it itself
    assert np.array_equal(np.asarray(kwargs["image"]), reference)
    assert len(kwargs["pose_video"]) == len(kwargs["face_video"]) == frames_wanted
    assert {f.size for f in kwargs["face_video"]} == {(FACE, FACE)}
    refs = kwargs["_refs"]
    assert len(refs) >= 2 and all(torch.equal(refs[0], r) for r in refs[1:])

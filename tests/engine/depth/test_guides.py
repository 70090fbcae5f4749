"""Where the depth warp reaches each engine: the preview renders it, Wan's guide video and the
`apply: post` warp use it, prompt engines get words; a 2D path never takes it."""

from __future__ import annotations

import numpy as np

from engine.base import CameraState, GenerationRequest
from engine.camera_prompt import describe_camera
from engine.depth.warp import DepthScene, depth_guide, warp_with_depth
from engine.diffusers.families.wan import camera_guide
from engine.geometry import relative_homography, warp_frame
from engine.preview import PreviewEngine
from stages.render.generate import apply_camera_post
from tests.helpers.depth_scenes import two_planes

W, H = 64, 48
PATH = tuple(CameraState(dolly=0.1 * i, orbit=2.0 * i) for i in range(5))


def _request(image, depth, camera=PATH) -> GenerationRequest:
    return GenerationRequest(prompt="a card", width=W, height=H, num_frames=len(camera), fps=16,
                             seed=1, start_image=image, camera=camera, depth=depth,
                             params={"motion": 0.0, "caption": False})


def test_preview_renders_the_depth_warp_exactly():
    image, depth, _ = two_planes()
    frames = PreviewEngine().generate(_request(image, depth))
    scene = DepthScene.from_map(depth)
    assert np.array_equal(frames[0], image)
    for state, frame in zip(PATH[1:], frames[1:]):
        assert np.array_equal(frame, warp_with_depth(image, scene, PATH[0], state))


def test_guides_and_post_warp_use_depth_and_2d_paths_do_not():
    image, depth, _ = two_planes()
    request = _request(image, depth)
    want = depth_guide(image, depth, PATH)
    assert all(np.array_equal(a, b) for a, b in zip(camera_guide(image, request), want))
    posted = apply_camera_post(np.stack([image] * len(PATH)), request)
    assert all(np.array_equal(a, b) for a, b in zip(posted, want))
    # A 2D path with a depth map keeps the homography warp, pixel for pixel.
    flat = tuple(CameraState(zoom=0.05 * i) for i in range(5))
    guide = camera_guide(image, _request(image, depth, flat))
    assert np.array_equal(guide[-1], warp_frame(image, relative_homography(flat[-1], flat[0],
                                                                             W, H)))


def test_prompt_engines_get_words_for_3d_moves():
    assert describe_camera([CameraState(), CameraState(dolly=0.2)]) == "dolly in"
    assert "orbits left" in describe_camera([CameraState(), CameraState(orbit=-20)])
    assert describe_camera([CameraState(aperture=1, focus=0.1),
                            CameraState(aperture=1, focus=0.9)]).startswith("rack focus to the "
                                                                             "foreground")
    assert describe_camera([CameraState(focus=0.1), CameraState(focus=0.9)]) == ""

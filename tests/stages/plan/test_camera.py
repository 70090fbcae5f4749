"""Camera paths: easing, constant moves and keyframes (stages.plan.camera), on the models directly."""

from __future__ import annotations

import pytest

from engine.base import CameraState
from stages.plan.camera import camera_at, camera_path, ease
from stages.storyboard.schema.camera import CameraKey, CameraMove

EASES = ("linear", "in", "out", "in_out")


def approx_state(state: CameraState, **expected: float) -> None:
    want = CameraState(**expected).as_tuple()
    assert state.as_tuple() == pytest.approx(want, abs=1e-12)


# -- ease -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", EASES)
def test_ease_endpoints_are_exact(kind):
    assert ease(kind, 0.0) == 0.0
    assert ease(kind, 1.0) == 1.0


@pytest.mark.parametrize(
    "kind, t, expected",
    [
        ("linear", 0.25, 0.25),
        ("linear", 0.5, 0.5),
        ("in", 0.5, 0.25),
        ("in", 0.25, 0.0625),
        ("out", 0.5, 0.75),
        ("out", 0.25, 0.4375),
        ("in_out", 0.5, 0.5),
        ("in_out", 0.25, 0.15625),
        ("in_out", 0.75, 0.84375),
    ],
)
def test_ease_known_points(kind, t, expected):
    assert ease(kind, t) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("kind", EASES)
def test_ease_clamps_outside_unit_interval(kind):
    assert ease(kind, -0.5) == 0.0
    assert ease(kind, -1e9) == 0.0
    assert ease(kind, 1.5) == 1.0
    assert ease(kind, 1e9) == 1.0


@pytest.mark.parametrize("kind", EASES)
def test_ease_is_monotonic_and_in_range(kind):
    values = [ease(kind, i / 100) for i in range(101)]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert all(b >= a for a, b in zip(values, values[1:]))


def test_ease_in_and_out_are_mirror_images():
    for i in range(11):
        t = i / 10
        assert ease("out", t) == pytest.approx(1.0 - ease("in", 1.0 - t), abs=1e-12)
        assert ease("in_out", t) == pytest.approx(1.0 - ease("in_out", 1.0 - t), abs=1e-12)


# -- no camera --------------------------------------------------------------------------------


def test_no_camera_is_identity():
    for t in (-1.0, 0.0, 2.5, 100.0):
        assert camera_at(None, t, 5.0) == CameraState()
    assert camera_at([], 1.0, 5.0) == CameraState()
    assert camera_path(None, 0, 9, 16, 5.0) == (CameraState(),) * 9


# -- constant moves ---------------------------------------------------------------------------


def test_constant_move_goes_from_rest_to_target():
    move = CameraMove(pan_x=0.2, pan_y=-0.1, zoom=0.5, rotate=30.0, tilt=-6.0)
    target = dict(pan_x=0.2, pan_y=-0.1, zoom=0.5, rotate=30.0, tilt=-6.0)
    assert camera_at(move, 0.0, 4.0) == CameraState()
    # Exactly the target at the shot's last frame (no float drift).
    assert camera_at(move, 4.0, 4.0) == CameraState(**target)
    approx_state(camera_at(move, 2.0, 4.0), **{k: v / 2 for k, v in target.items()})
    approx_state(camera_at(move, 1.0, 4.0), **{k: v / 4 for k, v in target.items()})


def test_constant_move_holds_outside_the_shot():
    move = CameraMove(zoom=0.4)
    assert camera_at(move, -1.0 / 16, 5.0) == CameraState()
    assert camera_at(move, 6.0, 5.0) == CameraState(zoom=0.4)


@pytest.mark.parametrize("kind, at_half", [("linear", 0.5), ("in", 0.25), ("out", 0.75),
                                           ("in_out", 0.5)])
def test_constant_move_ease(kind, at_half):
    move = CameraMove(pan_x=0.4, ease=kind)
    approx_state(camera_at(move, 3.0, 6.0), pan_x=0.4 * at_half)
    assert camera_at(move, 6.0, 6.0) == CameraState(pan_x=0.4)
    assert camera_at(move, 0.0, 6.0) == CameraState()


def test_constant_move_in_a_zero_length_shot_is_at_its_target():
    assert camera_at(CameraMove(zoom=0.3), 0.0, 0.0) == CameraState(zoom=0.3)


def test_constant_move_path_reaches_target_exactly_at_last_frame():
    move = CameraMove(pan_x=0.3, zoom=0.1, ease="in_out")
    fps, frames = 16, 81
    shot_seconds = (frames - 1) / fps
    path = camera_path(move, 0, frames, fps, shot_seconds)
    assert len(path) == frames
    assert path[0] == CameraState()
    assert path[-1] == CameraState(pan_x=0.3, zoom=0.1)
    # Split the same shot into two pieces sharing a frame: the shared frame agrees.
    first = camera_path(move, 0, 41, fps, shot_seconds)
    second = camera_path(move, 40, 41, fps, shot_seconds)
    assert first[-1] == second[0]
    assert first + second[1:] == path


# -- keyframes --------------------------------------------------------------------------------


def test_keyframes_hit_their_values_and_hold_outside():
    keys = [CameraKey(at=1.0, pan_x=0.1), CameraKey(at=3.0, pan_x=0.5)]
    # Hold before the first key: the first key's state, not zero.
    assert camera_at(keys, 0.0, 4.0) == CameraState(pan_x=0.1)
    assert camera_at(keys, -0.5, 4.0) == CameraState(pan_x=0.1)
    assert camera_at(keys, 1.0, 4.0) == CameraState(pan_x=0.1)
    approx_state(camera_at(keys, 2.0, 4.0), pan_x=0.3)
    assert camera_at(keys, 3.0, 4.0) == CameraState(pan_x=0.5)
    # Hold after the last key.
    assert camera_at(keys, 3.5, 4.0) == CameraState(pan_x=0.5)
    assert camera_at(keys, 100.0, 4.0) == CameraState(pan_x=0.5)


@pytest.mark.parametrize(
    "kind, quarter, half, three_quarters",
    [
        ("linear", 0.25, 0.5, 0.75),
        ("in", 0.0625, 0.25, 0.5625),
        ("out", 0.4375, 0.75, 0.9375),
        ("in_out", 0.15625, 0.5, 0.84375),
    ],
)
def test_keyframe_ease_shapes_the_move_into_that_key(kind, quarter, half, three_quarters):
    keys = [CameraKey(at=0.0, zoom=0.0), CameraKey(at=4.0, zoom=1.0, ease=kind)]
    approx_state(camera_at(keys, 1.0, 4.0), zoom=quarter)
    approx_state(camera_at(keys, 2.0, 4.0), zoom=half)
    approx_state(camera_at(keys, 3.0, 4.0), zoom=three_quarters)
    assert camera_at(keys, 4.0, 4.0) == CameraState(zoom=1.0)


def test_each_key_eases_only_its_own_interval():
    keys = [
        CameraKey(at=0.0, pan_y=0.0),
        CameraKey(at=2.0, pan_y=1.0, ease="in"),
        CameraKey(at=4.0, pan_y=2.0),  # linear
        CameraKey(at=6.0, pan_y=3.0, ease="out"),
    ]
    approx_state(camera_at(keys, 1.0, 6.0), pan_y=0.25)
    approx_state(camera_at(keys, 3.0, 6.0), pan_y=1.5)
    approx_state(camera_at(keys, 5.0, 6.0), pan_y=2.75)
    assert camera_at(keys, 2.0, 6.0) == CameraState(pan_y=1.0)
    assert camera_at(keys, 4.0, 6.0) == CameraState(pan_y=2.0)


def test_omitted_values_carry_over_from_the_key_before():
    keys = [
        CameraKey(at=0.0, pan_x=0.1, zoom=0.2),
        CameraKey(at=2.0, pan_x=0.3),  # zoom carries over: 0.2
        CameraKey(at=4.0, rotate=10.0),  # pan_x carries 0.3, zoom 0.2; rotate from 0
    ]
    assert camera_at(keys, 0.0, 4.0) == CameraState(pan_x=0.1, zoom=0.2)
    approx_state(camera_at(keys, 1.0, 4.0), pan_x=0.2, zoom=0.2)
    assert camera_at(keys, 2.0, 4.0) == CameraState(pan_x=0.3, zoom=0.2)
    approx_state(camera_at(keys, 3.0, 4.0), pan_x=0.3, zoom=0.2, rotate=5.0)
    assert camera_at(keys, 4.0, 4.0) == CameraState(pan_x=0.3, zoom=0.2, rotate=10.0)


def test_values_before_any_key_sets_them_are_zero():
    keys = [CameraKey(at=0.0, pan_x=0.5), CameraKey(at=2.0, tilt=4.0)]
    assert camera_at(keys, 0.0, 2.0) == CameraState(pan_x=0.5)
    approx_state(camera_at(keys, 1.0, 2.0), pan_x=0.5, tilt=2.0)
    assert camera_at(keys, 2.0, 2.0) == CameraState(pan_x=0.5, tilt=4.0)


def test_single_key_holds_everywhere():
    keys = [CameraKey(at=1.0, zoom=0.3, rotate=-5.0)]
    for t in (0.0, 1.0, 2.0, 10.0):
        assert camera_at(keys, t, 2.0) == CameraState(zoom=0.3, rotate=-5.0)


def test_keyframes_ignore_shot_length():
    keys = [CameraKey(at=0.0, pan_x=0.0), CameraKey(at=2.0, pan_x=0.2)]
    assert camera_at(keys, 1.0, 2.0) == camera_at(keys, 1.0, 50.0)


# -- camera_path ------------------------------------------------------------------------------


@pytest.mark.parametrize("camera", [
    None,
    CameraMove(zoom=0.2, ease="out"),
    [CameraKey(at=0.5, pan_x=0.1), CameraKey(at=2.0, pan_x=-0.1, ease="in_out")],
])
@pytest.mark.parametrize("start_frame", [-1, 0, 17])
def test_camera_path_samples_camera_at_each_frame(camera, start_frame):
    fps, frames, shot_seconds = 16, 21, 2.5
    path = camera_path(camera, start_frame, frames, fps, shot_seconds)
    assert isinstance(path, tuple)
    assert len(path) == frames
    assert all(isinstance(s, CameraState) for s in path)
    for i, state in enumerate(path):
        assert state == camera_at(camera, (start_frame + i) / fps, shot_seconds)


def test_camera_path_of_zero_frames_is_empty():
    assert camera_path(CameraMove(zoom=0.1), 0, 0, 16, 1.0) == ()

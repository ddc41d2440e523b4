"""Keys move the arm the way the picture shows it, in every view the scene can be watched from.

"Right" moves the hand right on screen, "away" moves it up the screen; "up" moves it up on screen in
views that do not look straight down. Judged on the picture itself: the hand's pixel relative to a
pixel fixed in the world (the object at rest), so a camera riding on the gripper (gripperPOV) counts
the same way as a fixed one: there the world slides the other way.
"""

import numpy as np
import pytest

from devices.base import Command
from teleop.cameras import camera_frame, project
from teleop.env import HAND_SAG, TaskEnv
from teleop.mapping import ActionMapper, view_basis
from teleop.spawn import SpawnStream

SIZE = 400
ALL_VIEWS = ("corner", "corner2", "corner3", "corner4", "topview", "behindGripper", "gripperPOV", "operator")


@pytest.fixture(scope="module")
def env():
    with TaskEnv("pick-place-v3") as env:
        yield env


def screen_motion(env, camera, translation, steps=40):
    """Pixel motion (dx right, dy down) of the hand relative to the world after ``steps`` of a command."""
    spawn = SpawnStream(env.spawn_low, env.spawn_high, strategy="random", base_seed=5)[0]
    env.reset(spawn)
    mapper = ActionMapper("keyboard", "view")
    mapper.basis = view_basis(env, camera)
    for _ in range(40):  # let the arm settle after the reset
        env.step(mapper(Command(), env.arm_state()))

    def relative_pixel():
        frame = camera_frame(env.model, env.data, camera)
        hand = np.array(project(frame, env.hand_pos, SIZE, SIZE))
        fixed = np.array(project(frame, env.object_pos, SIZE, SIZE))
        return hand - fixed

    before = relative_pixel()
    for _ in range(steps):
        env.step(mapper(Command(translation), env.arm_state()))
    return relative_pixel() - before


@pytest.mark.parametrize("camera", ALL_VIEWS)
def test_keys_follow_the_picture(env, camera):
    assert camera in env.camera_names
    right = screen_motion(env, camera, (1.0, 0.0, 0.0))
    assert right[0] > 5 and abs(right[1]) < 0.5 * right[0], f"right moved the hand {right} px on screen"
    away = screen_motion(env, camera, (0.0, 1.0, 0.0))
    assert away[1] < -3 and abs(away[0]) < 0.5 * -away[1], f"away moved the hand {away} px on screen"
    frame = camera_frame(env.model, env.data, camera)
    if abs(frame.forward[2]) < 0.9:  # not looking straight down: lifting shows as up on screen
        up = screen_motion(env, camera, (0.0, 0.0, 1.0))
        assert up[1] < -3, f"up moved the hand {up} px on screen"


def test_a_blocked_hand_pushes_harder_and_stops_on_release():
    """While the hand does not move on a commanded axis the target's lead grows (to swing a door the last
    centimetres open), back to normal once it moves, and a release still holds the target at the hand."""
    from teleop.mapping import ACTION_SCALE, LEAD_PER_UNIT, PUSH_LEAD, StopOnRelease

    stop = StopOnRelease(np.eye(3))
    hand = np.array([0.0, 0.6, 0.2])
    mocap = hand + HAND_SAG
    leads = []
    for _ in range(60):  # full command on x, the hand blocked: it stays where it is
        action = stop(np.array([1.0, 0.0, 0.0]), hand, mocap)
        mocap = mocap + action * ACTION_SCALE
        leads.append(mocap[0] - (hand + HAND_SAG)[0])
    assert leads[3] == pytest.approx(LEAD_PER_UNIT)  # at first the normal lead
    assert leads[-1] == pytest.approx(PUSH_LEAD)  # grown to the push lead, no further
    assert leads[-1] > 3 * LEAD_PER_UNIT
    for _ in range(20):  # the obstacle gives way: the hand moves freely again and the lead shrinks back
        hand = hand + np.array([0.003, 0.0, 0.0])
        action = stop(np.array([1.0, 0.0, 0.0]), hand, mocap)
        mocap = mocap + action * ACTION_SCALE
    assert stop.push[0] == 0.0
    action = stop(np.zeros(3), hand, mocap)  # released: the target goes back to the hand and holds there
    mocap = mocap + action * ACTION_SCALE
    assert mocap[0] == pytest.approx((hand + HAND_SAG)[0], abs=1e-9)

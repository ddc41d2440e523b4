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
from teleop.env import TaskEnv
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

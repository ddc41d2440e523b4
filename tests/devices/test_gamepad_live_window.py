"""`teleop record --device gamepad`'s live loop with a real SDL virtual Xbox pad, under the dummy video driver."""

import time

import numpy as np

from devices.gamepad import GamepadDevice
from teleop.episode import read_episode
from teleop.replay import replay
from test_live_window import hand, run_with  # noqa: E402 - the operator thread that plays a script

# SDL's virtual game controller: axes leftx lefty ..., buttons a b x y back guide start ... rightshoulder (10)
LEFTX, LEFTY = 0, 1
START, RIGHTSHOULDER = 6, 10


def test_left_stick_moves_the_hand_in_the_view_frame_and_pad_buttons_end_and_keep(virtual_pads, pygame_headless,
                                                                                   tmp_path):
    from teleop.mapping import view_basis

    pygame = pygame_headless
    pad = virtual_pads("Xbox 360 Controller", 0x045E, 0x028E)
    marks = {}

    def at(name):
        def note(c):
            marks[name] = (c.flow.steps, hand(c))
        return note

    def push(x, y, name):
        def act(c):
            at(name)(c)
            pad.axis(LEFTX, x).axis(LEFTY, y)
        return act

    def press(button):
        def act(c):
            pad.button(button, True)
            time.sleep(0.05)  # held across a few pumps, like a finger
            pad.button(button, False)
        return act

    # Half deflection, so the hand stays clear of the workspace bounds (which would clip the motion);
    # each push is followed by a stop and a settle, so the next displacement carries no lag of the last one.
    script = [
        ("right", lambda c: c.flow.phase.value == "idle", push(16384, 0, "right")),  # first motion starts it
        ("stop", lambda c: c.flow.steps >= 50, push(0, 0, "stop")),
        ("up", lambda c: c.flow.steps >= marks["stop"][0] + 20, push(0, -16384, "up")),  # away from the operator
        ("release", lambda c: c.flow.steps >= marks["up"][0] + 50, push(0, 0, "release")),
        ("settled", lambda c: c.flow.steps >= marks["release"][0] + 20,
         lambda c: (at("settled")(c), view_basis(c.env, "corner"))[1]),
        ("end", lambda c: True, press(START)),  # Start: stop recording
        ("keep", lambda c: c.flow.phase.value == "review", press(RIGHTSHOULDER)),  # RB: keep
    ]
    device = GamepadDevice(deadzone=0.1)
    try:
        result, log = run_with(device, script, tmp_path, task="reach-v3", episodes=1, camera="corner")
    finally:  # run_live closes the display; the session-wide pygame fixture expects it open
        pygame.display.init()
        pygame.display.set_mode((64, 64))
    right, away = log["settled"][:, 0], log["settled"][:, 1]
    rightward = marks["up"][1] - marks["right"][1]
    awayward = marks["settled"][1] - marks["up"][1]
    # Half deflection for 50 steps: the hand moves at half its top pace (teleop/mapping.py), ~6 cm.
    assert rightward @ right > 0.03 and abs(rightward @ away) < 0.3 * (rightward @ right)
    assert awayward @ away > 0.03 and abs(awayward @ right) < 0.3 * (awayward @ away)

    assert result.kept == 1 and len(result.written) == 1
    episode = read_episode(result.written[0])
    assert episode.attrs["device"] == "gamepad" and episode.attrs["end_reason"] == "ended by the operator"
    stop, up, release = marks["stop"][0], marks["up"][0], marks["release"][0]
    # The stick's direction, recorded as sent (at half deflection the target leads the hand by 5 mm).
    rightward_actions = episode.action[5:stop - 5, :3] @ right
    awayward_actions = episode.action[up + 5:release - 5, :3] @ away
    assert np.all(rightward_actions > 0.01) and rightward_actions.mean() > 0.05
    assert np.all(awayward_actions > 0.01) and awayward_actions.mean() > 0.05
    assert np.all(np.abs(episode.action[stop + 5:up - 5, :3]) < 1e-9)  # stick centred: the target holds still
    assert replay(result.written[0]).exact

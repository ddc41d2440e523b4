"""The live window loop under SDL's dummy video driver: real threads, real pygame events, real files."""

import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import run_cli
from devices.stand_ins import COMPACT, FakeHid, report  # the fake hidapi that replays reports
from teleop.episode import episode_files, read_episode
from teleop.replay import replay


def test_scripted_show_records_through_the_live_loop_and_replays_exactly(tmp_path):
    out = tmp_path / "shown"
    res = run_cli("teleop.cli", "record", "--device", "scripted", "--show", "--task", "reach-v3", "--episodes", "2",
                  "--out", str(out), "--seed", "7", "--view-size", "96", timeout=120,
                  env={"SDL_VIDEODRIVER": "dummy", "TELEOP_CONFIG_DIR": str(tmp_path / "cfg")})
    assert res.returncode == 0, res.stderr
    assert "kept 2 episodes" in res.stdout and "control" in res.stderr  # the timing line
    files = episode_files(out)
    assert len(files) == 2
    for path in files:
        episode = read_episode(path)
        assert episode.succeeded and episode.attrs["device"] == "scripted"
        assert episode.attrs["end_reason"] == "success"
        assert episode.num_steps == episode.attrs["first_success_step"] + 40  # 0.5 s hold at 80 Hz
        assert replay(path).exact
    assert {read_episode(p).seed for p in files} == {7, 8}


class Operator(threading.Thread):
    """Plays a script of steps against the running loop: each waits for a condition, then acts."""

    def __init__(self, script, timeout=40.0):
        super().__init__(daemon=True)
        self.script, self.timeout = script, timeout
        self.control = None
        self.log = {}
        self.failure = None

    def run(self):
        import pygame

        try:
            for name, condition, action in self.script:
                end = time.time() + self.timeout
                while not condition(self.control):
                    if time.time() > end:
                        raise AssertionError(f"operator step {name!r} timed out "
                                             f"(phase {self.control.flow.phase}, steps {self.control.flow.steps})")
                    time.sleep(0.005)
                self.log[name] = action(self.control)
            # The script is over: the loop should have ended by now; never let a test hang on it.
            end = time.time() + 15
            while self.control.flow.phase.value != "done" and time.time() < end:
                time.sleep(0.05)
            if self.control.flow.phase.value != "done":
                raise AssertionError(f"the window did not close after the script (phase {self.control.flow.phase})")
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.failure = error
            pygame.event.post(pygame.event.Event(pygame.QUIT))


def key(kind, code):
    import pygame

    pygame.event.post(pygame.event.Event(kind, key=code, mod=0, unicode="", scancode=0))


def hand(control):
    return control.env.hand_pos.copy()


def run_with(device, script, tmp_path, **config):
    """Run the live loop with ``script`` played against it. These tests keep episodes that end
    without success (they test the loop, not a task), so failures are kept unless a test says not."""
    from teleop.live.window import LiveConfig, run_live

    config.setdefault("keep_failures", True)
    operator = Operator(script)

    def start(control):
        operator.control = control
        operator.start()

    result = run_live(device, LiveConfig(out=str(tmp_path / "out"), view_size=96, fps=20, **config), on_start=start)
    operator.join(5)
    if operator.failure:
        raise operator.failure
    return result, operator.log


def test_keyboard_d_moves_the_arm_right_in_the_view_and_the_episode_is_kept(tmp_path):
    import pygame

    from devices.keyboard import KeyboardDevice
    from teleop.mapping import view_basis

    def idle(c):
        return c.flow.phase.value == "idle"

    def press_d(c):
        start = hand(c)
        key(pygame.KEYDOWN, pygame.K_d)
        return start

    script = [
        ("press d", idle, press_d),  # first motion starts the recording
        ("release d", lambda c: c.flow.steps >= 60, lambda c: key(pygame.KEYUP, pygame.K_d)),
        ("settled", lambda c: c.flow.steps >= 80, lambda c: (hand(c), view_basis(c.env, "corner"))),
        ("end", lambda c: True, lambda c: key(pygame.KEYDOWN, pygame.K_RETURN)),
        ("keep", lambda c: c.flow.phase.value == "review", lambda c: key(pygame.KEYDOWN, pygame.K_k)),
    ]
    result, log = run_with(KeyboardDevice(), script, tmp_path, task="reach-v3", episodes=1, camera="corner")
    moved = log["settled"][0] - log["press d"]
    right, away = log["settled"][1][:, 0], log["settled"][1][:, 1]
    assert moved @ right > 0.05  # metres along the view's right
    assert abs(moved @ away) < 0.3 * (moved @ right)  # and not along the other screen axis
    assert len(result.written) == 1
    episode = read_episode(result.written[0])
    assert episode.attrs["device"] == "keyboard" and episode.attrs["end_reason"] == "ended by the operator"
    assert not episode.succeeded
    actions = episode.action[:60, :3]
    # Every recorded action while D was held pushes right (the mocap target leads the hand by at most
    # a centimetre, so an action is the hand's pace, not a full 1 cm step: teleop/mapping.py).
    assert np.all(actions @ right > 0.01) and (actions @ right).mean() > 0.1
    assert replay(result.written[0]).exact
    s = result.stats.summary()
    assert s["latency_n"] >= 2 and s["ticks"] > 80


def test_input_arriving_after_the_drain_is_applied_in_the_same_tick(tmp_path):
    """Late sampling: a key that lands between the tick's drain and env.step moves the arm in that step."""
    import pygame

    from devices.keyboard import KeyboardDevice

    class LateKeyboard(KeyboardDevice):
        control, armed, late_step = None, False, None

        def poll(self):
            command = super().poll()  # this tick's drain is over: the key below lands after it
            if self.armed:
                self.armed, self.late_step = False, self.control.buffer.t
                key(pygame.KEYDOWN, pygame.K_d)
            return command

    device = LateKeyboard()

    def arm(c):
        device.control, device.armed = c, True

    script = [
        ("record", lambda c: c.flow.phase.value == "idle", lambda c: key(pygame.KEYDOWN, pygame.K_RETURN)),
        ("arm", lambda c: c.flow.steps >= 10, arm),
        ("end", lambda c: device.late_step is not None and c.flow.steps >= device.late_step + 20,
         lambda c: key(pygame.KEYDOWN, pygame.K_RETURN)),
        ("keep", lambda c: c.flow.phase.value == "review", lambda c: key(pygame.KEYDOWN, pygame.K_k)),
    ]
    result, _ = run_with(device, script, tmp_path, task="reach-v3", episodes=1, camera="corner")
    episode = read_episode(result.written[0])
    moving = np.abs(episode.action[:, :3]).max(axis=1) > 0.05
    t = device.late_step
    assert not moving[:t].any()  # nothing held before
    assert moving[t]  # the step polled just before the key landed already carries it
    assert replay(result.written[0]).exact


def test_spacemouse_unplug_pauses_with_a_notice_and_replug_resumes(tmp_path):
    import pygame

    from devices.spacemouse import SpaceMouseDevice

    hid = FakeHid(COMPACT)
    path = b"/dev/hidraw0"
    frozen = {}

    def push_right(c):
        hid.feed(path, report(1, 350, 0, 0))

    def unplug(c):
        hid.unplug(path)

    def watch_frozen(c):
        frozen["steps"], frozen["hud"] = c.flow.steps, c.hud
        return c.flow.steps

    def replug(c):
        frozen["after"] = c.flow.steps
        hid.plug(*COMPACT, path=path)

    script = [
        ("push", lambda c: c.flow.phase.value == "idle", push_right),
        ("unplug", lambda c: c.flow.steps >= 20, unplug),
        ("lost", lambda c: c.flow.device_lost and c.hud is not None and c.hud.device_lost, watch_frozen),
        ("wait", lambda c: time.sleep(0.3) or True, replug),
        ("back", lambda c: not c.flow.device_lost and c.device.status.startswith("connected"), push_right),
        ("moving", lambda c: c.flow.steps >= frozen["after"] + 20, lambda c: key(pygame.KEYDOWN, pygame.K_RETURN)),
        ("keep", lambda c: c.flow.phase.value == "review", lambda c: key(pygame.KEYDOWN, pygame.K_k)),
    ]
    device = SpaceMouseDevice(hid_api=hid, deadzone=0.0, retry_interval_s=0.05)
    result, log = run_with(device, script, tmp_path, task="reach-v3", episodes=1)
    assert frozen["after"] <= frozen["steps"] + 1  # nothing stepped during the 0.3 s unplugged
    assert frozen["hud"].device_lost and "unplugged" in frozen["hud"].device_status
    from teleop.live.hud import badges

    assert any("UNPLUGGED" in text for _, text, _ in badges(frozen["hud"]))
    episode = read_episode(result.written[0])
    assert episode.num_steps >= frozen["after"] + 20
    assert replay(result.written[0]).exact


def test_out_of_range_speed_or_step_limit_is_a_one_line_error(tmp_path):
    for flags, message in ((["--speed", "3"], "--speed 3.0: must be in [0.1, 1.0]"),
                           (["--speed", "0"], "--speed 0.0: must be in [0.1, 1.0]"),
                           (["--max-steps", "50000"], "step limit 50000: must be in 1..48000"),
                           (["--max-steps", "0"], "step limit 0: must be in 1..48000")):
        res = run_cli("teleop.cli", "record", "--device", "keyboard", "--out", str(tmp_path / "x"), *flags,
                      timeout=60, env={"SDL_VIDEODRIVER": "dummy", "TELEOP_CONFIG_DIR": str(tmp_path / "cfg")})
        assert res.returncode == 2, res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.stderr
    assert not (tmp_path / "x").exists()  # nothing written


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="DISPLAY and WAYLAND_DISPLAY are Linux's")
def test_no_display_or_an_unreachable_one_is_a_one_line_error_naming_it(tmp_path):
    """Without these, SDL falls back to an invisible window and the error could not say which display failed."""
    free = next(n for n in range(4242, 4342) if not Path(f"/tmp/.X11-unix/X{n}").exists()
                and not Path(f"/tmp/.X{n}-lock").exists())
    for env, message in (({"DISPLAY": None}, "no display found (neither DISPLAY nor WAYLAND_DISPLAY is set)"),
                         ({"DISPLAY": f":{free}"}, f"cannot reach the X display DISPLAY=:{free} (")):
        res = run_cli("teleop.cli", "record", "--device", "keyboard", "--out", str(tmp_path / "x"), timeout=60,
                      env={"SDL_VIDEODRIVER": None, "WAYLAND_DISPLAY": None, "MUJOCO_GL": "egl",
                           "TELEOP_CONFIG_DIR": str(tmp_path / "cfg"), **env})
        assert res.returncode == 2, res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.stderr
    assert not episode_files(tmp_path / "x")


def test_the_hand_stops_where_the_key_is_released(tmp_path):
    """Seen: holding A for 0.12 s and releasing, the gripper travelled about a third again as far."""
    import pygame

    from devices.keyboard import KeyboardDevice

    marks = {}

    def press(c):
        marks["pressed"] = c.flow.steps
        key(pygame.KEYDOWN, pygame.K_a)

    def release(c):
        key(pygame.KEYUP, pygame.K_a)
        marks["released"] = c.flow.steps

    script = [
        ("record", lambda c: c.flow.phase.value == "idle", lambda c: key(pygame.KEYDOWN, pygame.K_RETURN)),
        ("press", lambda c: c.flow.steps >= 40, press),  # the arm has settled from the reset
        ("release", lambda c: time.sleep(0.3) or True, release),
        ("end", lambda c: c.flow.steps >= marks["released"] + 80, lambda c: key(pygame.KEYDOWN, pygame.K_RETURN)),
        ("keep", lambda c: c.flow.phase.value == "review", lambda c: key(pygame.KEYDOWN, pygame.K_k)),
    ]
    result, _ = run_with(KeyboardDevice(), script, tmp_path, task="reach-v3", episodes=1, speed=0.5)
    episode = read_episode(result.written[0])
    hand = episode.state[:, :3]
    # Where A went up, as the loop saw it: the first step whose command no longer pushes along the press (the
    # loop polls keys once per frame, two steps at this speed, so the operator thread's own count at KEYUP
    # can be a frame early). That step may brake: the hand must still stop within 2 mm of where it was.
    pushing = episode.action[:, :3] @ episode.action[marks["pressed"] + 5, :3] > 0
    pressed = int(np.argmax(pushing))
    released = pressed + int(np.argmin(pushing[pressed:]))
    assert released > pressed and released + 80 < episode.num_steps
    assert abs(released - marks["released"]) <= 4  # the release the operator made, give or take two frames
    moved = hand[released] - hand[pressed]
    direction = moved / np.linalg.norm(moved)
    after = (hand[released:released + 80] - hand[released]) @ direction
    assert np.linalg.norm(moved) > 0.003  # the press did move the hand
    assert abs(after[-1]) < 0.002 and after.max() < 0.002  # and it stopped within 2 mm of where A went up


def test_practice_records_nothing_and_has_no_step_limit(tmp_path):
    import pygame

    from devices.keyboard import KeyboardDevice

    seen = {}

    def note_limit(c):
        seen["max_steps"], seen["hud"] = c.env.max_steps, c.hud
        key(pygame.KEYDOWN, pygame.K_RETURN)  # end the attempt

    script = [
        ("move", lambda c: c.flow.phase.value == "idle", lambda c: key(pygame.KEYDOWN, pygame.K_d)),
        ("stop", lambda c: c.flow.steps >= 30, lambda c: key(pygame.KEYUP, pygame.K_d)),
        ("end", lambda c: c.flow.steps >= 40, note_limit),
        ("next", lambda c: c.flow.phase.value == "review", lambda c: key(pygame.KEYDOWN, pygame.K_k)),
        ("quit", lambda c: c.flow.phase.value == "idle", lambda c: key(pygame.KEYDOWN, pygame.K_ESCAPE)),
    ]
    result, _ = run_with(KeyboardDevice(), script, tmp_path, task="reach-v3", episodes=1, practice=True)
    assert result.written == [] and not (tmp_path / "out").exists()
    assert seen["max_steps"] == 48000 and seen["hud"].practice

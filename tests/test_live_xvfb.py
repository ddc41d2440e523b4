"""The real window as a person uses it: Xvfb display, real X key events (xdotool), screenshots.

Needs `apt-get install -y xvfb xdotool imagemagick x11-utils` (.ci/run installs them); skipped without
(the `xvfb` fixture is in tests/conftest.py).
Screenshots land in tests/artifacts/ (gitignored): look at them.

The pick-place test plays a plan of key presses computed beforehand in a copy of the task (same
spawn, same mapping): it pauses the window, holds the motion keys it needs and steps the
simulation one control step per "." press, as a person does for fine positioning. Stepping makes
the run independent of how much CPU the window gets on a loaded machine, so the recorded actions
can be checked against the plan exactly. The window runs at its default speed and step limit
throughout; once the object is at the goal the test un-pauses and the episode ends on its own.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from cli_helpers import ROOT
from teleop.episode import episode_files, read_episode
from teleop.replay import replay

ARTIFACTS = Path(__file__).parent / "artifacts"
KEYS = {(0, 1): "d", (0, -1): "a", (1, 1): "w", (1, -1): "s", (2, 1): "r", (2, -1): "f"}  # (view axis, sign)
HOLD_S = 0.45  # a key held this long before the first step moves at full speed (the ramp is 0.3 s)


def _x(display, *args, timeout=120):
    return subprocess.run(list(args), env={**os.environ, "DISPLAY": display}, capture_output=True, text=True,
                          timeout=timeout)


def _window_id(display, title, proc, timeout=60):
    """The id of the window whose name holds ``title`` (xdotool search misses it under Xvfb)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"teleop exited early: {proc.stderr.read()}")
        for line in _x(display, "xwininfo", "-root", "-tree").stdout.splitlines():
            if title in line:
                return line.split()[0]
        time.sleep(0.2)
    raise AssertionError(f"no window named like {title!r}")


def _wait_for_scene(display, shot, proc, timeout=60):
    """Return once a screenshot of the root window shows a rendered scene, not a blank screen."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"teleop exited early: {proc.stderr.read()}")
        if (_x(display, "import", "-window", "root", str(shot)).returncode == 0 and shot.stat().st_size > 20_000
                and _png_pixels(shot).std() > 20):
            return
        time.sleep(0.5)
    raise AssertionError(f"the window showed no scene within {timeout} s")


def _png_pixels(path):
    import imageio.v3 as iio

    return np.asarray(iio.imread(path), dtype=np.float64)


def _open_window(display, tmp_path, *args):
    env = {**os.environ, "DISPLAY": display, "TELEOP_CONFIG_DIR": str(tmp_path / "cfg")}
    env.pop("SDL_VIDEODRIVER", None)  # the real X11 driver, not the tests' dummy
    proc = subprocess.Popen([sys.executable, "-m", "teleop.cli", "record", "--device", "keyboard", *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    window = _window_id(display, "teleop record", proc)
    assert _x(display, "xdotool", "windowfocus", window).returncode == 0
    # The operator acts once the scene is on screen: EGL start-up on a loaded CI machine takes seconds.
    _wait_for_scene(display, tmp_path / "start.png", proc)
    return proc


def _finish(proc, timeout=90):
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()


# ------------------------------------------------------------------ the plan, made in a copy of the task

class Planner:
    """Steps a copy of the task the way the window will: same spawn, same view, same mapping."""

    def __init__(self, task, seed):
        from teleop.env import TaskEnv
        from teleop.mapping import ActionMapper, view_basis
        from teleop.spawn import DEFAULT_STRATEGY, SpawnStream

        self.env = TaskEnv(task, max_steps=2000)
        spawn = SpawnStream(self.env.spawn_low, self.env.spawn_high, strategy=DEFAULT_STRATEGY, base_seed=seed)[0]
        self.obs = self.env.reset(spawn)  # the window's first spawn of `--seed seed`
        self.mapper = ActionMapper("keyboard", "view")
        self.mapper.basis = view_basis(self.env, "operator")
        self.gripper = -1.0
        self.segments = []  # (keys held, gripper toggled before, steps)
        self.actions = []
        self.success_at = None

    def _step(self, translation):
        from devices.base import Command

        action = self.mapper(Command(translation, gripper=self.gripper), self.env.arm_state())
        self.obs, _, success, _, _ = self.env.step(action)
        self.actions.append(action)
        if success and self.success_at is None:
            self.success_at = len(self.actions)

    def wait(self, steps, *, toggle_gripper=False):
        if toggle_gripper:
            self.gripper = -self.gripper
        for _ in range(steps):
            self._step((0.0, 0.0, 0.0))
        self.segments.append(((), toggle_gripper, steps))

    def move_axis(self, axis, target, tolerance=0.003):
        """Hold the key of one view axis until the hand (obs[:3]) is within ``tolerance`` of ``target``
        along it, then let the arm settle."""
        to_view = np.linalg.inv(self.mapper.basis)
        gap = (to_view @ (np.asarray(target) - self.obs[:3]))[axis]
        if abs(gap) <= tolerance:
            return
        sign = 1 if gap > 0 else -1
        translation = [0.0, 0.0, 0.0]
        translation[axis] = float(sign)
        steps = 0
        while (to_view @ (np.asarray(target) - self.obs[:3]))[axis] * sign > tolerance and steps < 400:
            self._step(tuple(translation))
            steps += 1
        self.segments.append(((KEYS[(axis, sign)],), False, steps))
        self.wait(4)  # the hand stops where the key went up

    def move_to(self, target):
        for axis in (2, 0, 1) if target[2] > self.obs[2] else (0, 1, 2):  # lift first, lower last
            self.move_axis(axis, target)


def plan_pick_place(seed):
    plan = Planner("pick-place-v3", seed)
    puck, goal = plan.obs[4:7].copy(), plan.obs[36:39].copy()
    plan.wait(1)  # the first "." starts the recording
    plan.move_to(puck + [0.0, 0.0, 0.12])  # above the puck (obs[:3] is the hand, 4.5 cm above the fingertips)
    plan.move_to(puck + [0.0, 0.0, 0.035])  # fingers around it
    plan.wait(25, toggle_gripper=True)  # close
    plan.move_to(np.array([*plan.obs[:2], goal[2]]))  # lift to the goal's height
    plan.move_to(goal)
    plan.env.close()
    return plan


def _send_plan(display, plan):
    for keys, toggle, steps in plan.segments:
        if toggle:
            _x(display, "xdotool", "key", "space")
        for key in keys:
            _x(display, "xdotool", "keydown", key)
        if keys:
            time.sleep(HOLD_S)
        # One control step per "." press; the window counts presses, so none is lost if they come
        # faster than it ticks, but the keys must stay down until the last of them has run.
        for start in range(0, steps, 50):
            _x(display, "xdotool", "key", "--delay", "40", *["period"] * min(50, steps - start))
        time.sleep(0.6)
        for key in keys:
            _x(display, "xdotool", "keyup", key)
        time.sleep(0.1)


def test_a_pick_place_demo_recorded_with_real_key_events_is_kept_and_replays_exactly(xvfb, tmp_path):
    seed = 7
    plan = plan_pick_place(seed)
    assert plan.success_at is not None, "the plan does not reach the goal in the copy of the task"
    out = tmp_path / "kb"
    proc = _open_window(xvfb, tmp_path, "--task", "pick-place-v3", "--episodes", "1", "--out", str(out),
                        "--seed", str(seed))
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        _x(xvfb, "xdotool", "key", "p")  # pause before anything moves: every step is a "." from here
        time.sleep(0.3)
        _send_plan(xvfb, plan)
        _x(xvfb, "import", "-window", "root", str(ARTIFACTS / "xvfb_pick_place_at_goal.png"))
        _x(xvfb, "xdotool", "key", "p")  # go on in real time: the hold after the success ends the episode
        time.sleep(3.0)
        _x(xvfb, "import", "-window", "root", str(ARTIFACTS / "xvfb_pick_place_review.png"))
        _x(xvfb, "xdotool", "key", "k")  # keep it: the last episode, so the window closes
        stdout, stderr = _finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "kept 1 episodes" in stdout, stdout + stderr
    files = episode_files(out)
    assert len(files) == 1
    episode = read_episode(files[0])
    assert episode.succeeded and episode.attrs["end_reason"] == "success"
    assert episode.attrs["speed"] == 0.5 and episode.attrs["max_steps"] == 2000  # the defaults
    # Every planned step went through X, the keyboard driver, the mapping and the simulator unchanged
    # (up to where the episode ended: success plus the hold, or the plan's end).
    assert episode.attrs["first_success_step"] == plan.success_at
    compared = min(len(plan.actions), episode.num_steps)
    np.testing.assert_array_equal(episode.action[:compared], np.array(plan.actions)[:compared])
    assert replay(files[0]).exact


def test_a_failed_episode_cannot_be_kept_with_k_or_enter(xvfb, tmp_path):
    out = tmp_path / "fail"
    proc = _open_window(xvfb, tmp_path, "--task", "reach-v3", "--episodes", "1", "--out", str(out),
                        "--max-steps", "40")
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        for habit in ("k", "Return"):
            _x(xvfb, "xdotool", "key", "Return")  # start recording; nothing moves, 40 steps run out
            time.sleep(2.5)
            shot = ARTIFACTS / f"xvfb_failed_review_{habit}.png"
            _x(xvfb, "import", "-window", "root", str(shot))
            _x(xvfb, "xdotool", "key", habit)  # the habitual keep: not kept, a fresh spawn comes up
            time.sleep(1.0)
        notice = ARTIFACTS / "xvfb_not_kept_notice.png"
        _x(xvfb, "import", "-window", "root", str(notice))
        _x(xvfb, "xdotool", "key", "Escape")
        stdout, stderr = _finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "kept 0 episodes" in stdout, stdout
    assert episode_files(out) == []
    review = _png_pixels(ARTIFACTS / "xvfb_failed_review_k.png")
    red = (np.abs(review[..., :3] - [235, 60, 60]).max(axis=-1) < 30)
    assert red.sum() > 50, "the review of a failure shows no red FAILED badge"

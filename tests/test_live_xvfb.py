"""The real window as a person uses it: Xvfb display, real X key events (xdotool), a screenshot of the HUD.

Needs `apt-get install -y xvfb xdotool imagemagick x11-utils` (.ci/run installs them); skipped without.
The screenshot lands in tests/artifacts/live_hud.png (gitignored).
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import ROOT
from teleop.episode import episode_files, read_episode
from teleop.replay import replay

TOOLS = ("Xvfb", "xdotool", "xwininfo", "import")
ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture
def xvfb():
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}: apt-get install -y xvfb xdotool imagemagick x11-utils")
    number = 90 + os.getpid() % 100
    server = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while not Path(f"/tmp/.X11-unix/X{number}").exists():
        if time.time() > deadline or server.poll() is not None:
            server.kill()
            pytest.skip("Xvfb did not start")
        time.sleep(0.05)
    yield f":{number}"
    server.terminate()
    server.wait(5)


def _x(display, *args):
    return subprocess.run(list(args), env={**os.environ, "DISPLAY": display}, capture_output=True, text=True,
                          timeout=20)


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


def test_keyboard_window_under_xvfb_moves_the_arm_and_saves_the_episode(xvfb, tmp_path):
    out = tmp_path / "xvfb"
    env = {**os.environ, "DISPLAY": xvfb, "TELEOP_CONFIG_DIR": str(tmp_path / "cfg")}
    env.pop("SDL_VIDEODRIVER", None)  # the real X11 driver, not the tests' dummy
    proc = subprocess.Popen([sys.executable, "-m", "teleop.cli", "record", "--device", "keyboard", "--task",
                             "reach-v3", "--episodes", "1", "--out", str(out), "--seed", "3"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        window = _window_id(xvfb, "teleop record", proc)
        assert _x(xvfb, "xdotool", "windowfocus", window).returncode == 0
        # The operator moves once the scene is on screen: EGL start-up on a loaded CI machine takes seconds.
        _wait_for_scene(xvfb, tmp_path / "start.png", proc)
        _x(xvfb, "xdotool", "keydown", "d")
        time.sleep(1.0)
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "live_hud.png"
        assert _x(xvfb, "import", "-window", "root", str(shot)).returncode == 0  # HUD while recording
        _x(xvfb, "xdotool", "keyup", "d")
        time.sleep(0.3)
        _x(xvfb, "xdotool", "key", "Return")  # end the episode
        time.sleep(1.0)
        _x(xvfb, "xdotool", "key", "k")  # keep it: the last episode, so the window closes
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "kept 1 episodes" in stdout
    files = episode_files(out)
    assert len(files) == 1
    episode = read_episode(files[0])
    assert episode.attrs["end_reason"] == "ended by the operator"
    moved = episode.state[-1, :3] - episode.state[0, :3]
    from teleop.env import TaskEnv
    from teleop.mapping import view_basis

    with TaskEnv("reach-v3") as probe:
        probe.reset(rand_vec=episode.rand_vec)
        right = view_basis(probe, "corner")[:, 0]
    # D held for a second: every step that carried a command moved the hand right in the view. How many
    # steps that is depends on how much CPU the loop got (on a loaded 2-core CI machine, few), so the
    # distance is checked against the steps that ran, not against the wall-clock second.
    commanded = np.abs(episode.action[:, :3]).max(axis=1) > 1e-6
    assert commanded.sum() >= 5, commanded.sum()
    assert (episode.action[commanded, :3] @ right > 0).all()
    assert moved @ right > 0.002 * commanded.sum(), (moved, commanded.sum())
    assert replay(files[0]).exact
    assert shot.stat().st_size > 20_000
    image = _png_pixels(shot)
    assert image.std() > 20  # a scene and text, not a blank screen


def _png_pixels(path):
    import imageio.v3 as iio

    return np.asarray(iio.imread(path), dtype=np.float64)

import os
import sys
from pathlib import Path

# Headless everything, before any test imports mujoco or pygame.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def pick_place_demos(tmp_path_factory):
    """Six scripted pick-place-v3 episodes, recorded once per test session."""
    from devices.scripted import ScriptedExpert
    from teleop.collect import record_headless

    out = tmp_path_factory.mktemp("pick_place")
    record_headless(ScriptedExpert("pick-place-v3"), task="pick-place-v3", episodes=6, out=out, seed=100,
                    progress=False)
    return out


XVFB_TOOLS = ("Xvfb", "xdotool", "xwininfo", "import")


@pytest.fixture
def xvfb():
    """A virtual X display (Xvfb) for real-window tests; skipped without the tools."""
    import shutil
    import subprocess
    import time

    missing = [t for t in XVFB_TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}: apt-get install -y xvfb xdotool imagemagick x11-utils")
    number = 90 + os.getpid() % 100
    server = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
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

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
    import select
    import shutil
    import subprocess

    missing = [t for t in XVFB_TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}: apt-get install -y xvfb xdotool imagemagick x11-utils")
    # -displayfd: Xvfb takes the first free display and writes its number, so parallel test workers never collide.
    read_end, write_end = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(write_end,))
    os.close(write_end)  # Xvfb's copy alone stays open: if it exits, the read below sees the end of the pipe
    with os.fdopen(read_end, "rb") as pipe:
        ready, _, _ = select.select([pipe], [], [], 10)
        line = pipe.readline() if ready else b""
    if not line.strip():
        server.kill()
        pytest.skip("Xvfb did not start")
    number = int(line)
    yield f":{number}"
    server.terminate()
    server.wait(5)

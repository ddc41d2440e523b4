"""`teleop record / inspect / replay` as a user runs them, and the faults they must survive."""

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from cli_helpers import ROOT, run_cli
from teleop.episode import episode_files, read_episode
from teleop.video import playback_steps


@pytest.mark.parametrize("task", ["push-v3", "drawer-open-v3", "door-open-v3"])
def test_record_inspect_replay_verify(task, tmp_path):
    out = tmp_path / task
    rec = run_cli("teleop.cli", "record", "--device", "scripted", "--task", task, "--episodes", "3",
                  "--out", str(out), "--seed", "40", "--quiet")
    assert rec.returncode == 0, rec.stderr
    files = episode_files(out)
    assert len(files) == 3
    seeds = {read_episode(p).seed for p in files}
    assert seeds == {40, 41, 42}
    ins = run_cli("teleop.cli", "inspect", str(out))
    assert ins.returncode == 0, ins.stderr
    assert "distinct spawns: 3 of 3" in ins.stdout
    assert sorted(p.name for p in out.iterdir()) == [f.name for f in files]  # nothing added unasked
    plotted = run_cli("teleop.cli", "inspect", str(out), "--plot", str(tmp_path / "spawns.png"))
    assert plotted.returncode == 0 and (tmp_path / "spawns.png").stat().st_size > 5000
    rep = run_cli("teleop.cli", "replay", "--verify", str(out))
    assert rep.returncode == 0, rep.stdout + rep.stderr
    assert "3 of 3 episodes replay exactly" in rep.stdout


def test_replay_verify_detects_a_tampered_action(pick_place_demos, tmp_path):
    from teleop.replay import replay

    path = tmp_path / "episode_000000.hdf5"
    path.write_bytes(episode_files(pick_place_demos)[0].read_bytes())
    assert replay(path).exact
    with h5py.File(path, "a") as f:
        f["action"][10, 0] += 0.25
    report = replay(path)
    assert not report.exact and report.first_divergent_step == 10  # the reward after the changed action
    assert not report.reproduced  # a changed action is no rounding
    assert report.max_state_diff > 0


def test_replay_video_is_h264_that_decodes(pick_place_demos, tmp_path):
    from teleop.video import read_video, video_info

    video = tmp_path / "replay.mp4"
    res = run_cli("teleop.cli", "replay", str(episode_files(pick_place_demos)[0]), "--video", str(video),
                  "--video-size", "160")
    assert res.returncode == 0, res.stderr
    info = video_info(video)
    assert info["codec"] == "h264" and info["size"] == (160, 160)
    frames = read_video(video)
    assert frames.shape[0] == info["frames"] > 10
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 1  # the arm moved
    # A quarter of real time by default: 80 steps take 4 s of video; at real time (1.0) a quarter of that.
    steps = read_episode(episode_files(pick_place_demos)[0]).num_steps
    assert info["frames"] == len(playback_steps(steps + 1, 0.25)) == pytest.approx(steps / 80 / 0.25 * 30, abs=2)
    fast = tmp_path / "fast.mp4"
    assert run_cli("teleop.cli", "replay", str(episode_files(pick_place_demos)[0]), "--video", str(fast),
                   "--video-size", "160", "--video-speed", "1").returncode == 0
    assert video_info(fast)["frames"] == pytest.approx(info["frames"] / 4, abs=2)


def test_playback_repeats_or_skips_steps_to_match_the_speed():
    assert playback_steps(9, 1.0) == [0, 2, 5, 8]  # real time: 2.67 steps per video frame
    quarter = playback_steps(9, 0.25)
    assert quarter[0] == 0 and quarter[-1] == 8 and len(quarter) == 13
    assert all(b - a in (0, 1) for a, b in zip(quarter, quarter[1:]))  # every step shown, some twice


def test_single_spawn_dataset_is_flagged_by_inspect(tmp_path):
    out = tmp_path / "broken"
    rec = run_cli("teleop.cli", "record", "--task", "pick-place-v3", "--episodes", "4", "--spawn", "fixed",
                  "--out", str(out), "--quiet")
    assert rec.returncode == 0, rec.stderr
    assert "same spawn" in rec.stderr
    ins = run_cli("teleop.cli", "inspect", str(out))
    assert "WARNING" in ins.stdout and "distinct spawns: 1 of 4" in ins.stdout
    assert "fail on every random spawn" in ins.stdout


def test_inspect_names_a_corrupt_file_and_reports_the_rest(pick_place_demos, tmp_path):
    for p in episode_files(pick_place_demos)[:3]:
        (tmp_path / p.name).write_bytes(p.read_bytes())
    victim = tmp_path / "episode_000001.hdf5"
    victim.write_bytes(victim.read_bytes()[:2000])
    ins = run_cli("teleop.cli", "inspect", str(tmp_path))
    assert ins.returncode == 1
    assert "episode_000001.hdf5" in ins.stdout and "unreadable" in ins.stdout
    assert "distinct spawns: 2 of 2" in ins.stdout
    assert "Traceback" not in ins.stderr


def test_unknown_task_is_one_line_with_suggestions(tmp_path):
    res = run_cli("teleop.cli", "record", "--task", "pick-plase-v3", "--out", str(tmp_path / "x"))
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0
    assert "pick-place-v3" in res.stderr and "Traceback" not in res.stderr


def test_unknown_camera_lists_the_scene_cameras(tmp_path):
    res = run_cli("teleop.cli", "record", "--task", "reach-v3", "--cameras", "front", "--out", str(tmp_path))
    assert res.returncode == 2 and "corner2" in res.stderr and "gripperPOV" in res.stderr


def test_sigkill_mid_session_leaves_only_complete_files(tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "teleop.cli", "record", "--task", "pick-place-v3",
                             "--episodes", "200", "--out", str(out), "--quiet", "--cameras", "corner2",
                             "--image-size", "48"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or len(episode_files(out)) < 3):
        time.sleep(0.05)
    time.sleep(0.37)  # land somewhere inside a later episode or write
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    files = episode_files(out)
    assert 3 <= len(files) < 200
    for path in files:
        episode = read_episode(path, images=True)  # every finished file reads back whole
        assert episode.succeeded and episode.images["corner2"].shape[0] == episode.num_steps
    # A new run in the same folder removes the dead run's temporary file and continues the numbering.
    rec = run_cli("teleop.cli", "record", "--task", "pick-place-v3", "--episodes", "1", "--out", str(out),
                  "--quiet")
    assert rec.returncode == 0, rec.stderr
    assert not list(out.glob(".*partial"))
    assert len(episode_files(out)) == len(files) + 1
    seeds = [read_episode(p).seed for p in episode_files(out)]
    assert len(set(seeds)) == len(seeds)


class _NaNAfter:
    """A device that behaves like the expert, then sends NaN in its second episode."""

    name = "flaky-stick"
    frame = "world"

    def __init__(self):
        from devices.scripted import ScriptedExpert

        self.expert = ScriptedExpert("reach-v3")
        self.episode = 0

    def __enter__(self):
        self.expert.connect()
        return self

    def __exit__(self, *a):
        return False

    def reset(self):
        self.episode += 1

    def observe(self, obs):
        self.expert.observe(obs)

    def poll(self):
        from devices.base import Command

        command = self.expert.poll()
        if self.episode == 2:
            return Command(translation=(float("nan"), 0.0, 0.0))
        return command


def test_nan_action_is_refused_naming_the_device_and_earlier_episodes_survive(tmp_path):
    from teleop.collect import record_headless
    from teleop.errors import ToolkitError

    with pytest.raises(ToolkitError, match="flaky-stick.*non-finite"):
        record_headless(_NaNAfter(), task="reach-v3", episodes=3, out=tmp_path, progress=False)
    files = episode_files(tmp_path)
    assert len(files) == 1 and read_episode(files[0]).succeeded


def test_nan_action_never_reaches_the_simulator():
    from teleop.env import ActionError, TaskEnv
    from teleop.spawn import SpawnStream

    env = TaskEnv("reach-v3")
    env.reset(SpawnStream(env.spawn_low, env.spawn_high)[0])
    before = env.sim_state().copy()
    with pytest.raises(ActionError, match="non-finite"):
        env.step(np.array([0.0, np.inf, 0.0, 0.0]))
    np.testing.assert_array_equal(env.sim_state(), before)
    env.close()


@pytest.fixture
def tiny_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a 3 MB tmpfs as a full disk")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_disk_full_gives_a_clear_error_and_keeps_earlier_episodes(tiny_disk):
    out = tiny_disk / "rec"
    res = run_cli("teleop.cli", "record", "--task", "reach-v3", "--episodes", "50", "--out", str(out),
                  "--cameras", "corner2", "--image-size", "96", "--quiet")
    assert res.returncode == 2, res.stderr
    assert "No space left on device" in res.stderr and "Traceback" not in res.stderr
    files = episode_files(out)
    assert 1 <= len(files) < 50
    for path in files:
        read_episode(path, images=True)
    assert not list(out.glob(".*partial"))


def test_unwritable_output_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    res = run_cli("teleop.cli", "record", "--task", "reach-v3", "--out", str(blocker / "rec"))
    assert res.returncode == 2 and "cannot create output folder" in res.stderr


def test_replay_tells_rounding_from_divergence(tmp_path):
    """A file from another CPU: MuJoCo states bit for bit, observations and rewards 1e-16 off: reproduced,
    not exact. Any MuJoCo state difference, or more than rounding, is a divergence."""
    from teleop.replay import ReplayReport

    def report(obs, sim, reward):
        return ReplayReport(tmp_path, 30, obs, sim, reward, 0, 0, True)

    assert report(0.0, 0.0, 0.0).exact and report(0.0, 0.0, 0.0).reproduced
    assert report(1.1e-16, 0.0, 8.3e-17).reproduced and not report(1.1e-16, 0.0, 8.3e-17).exact
    assert not report(1.1e-16, 1e-16, 0.0).reproduced
    assert not report(0.0, 0.0, 1e-3).reproduced and not report(1e-4, 0.0, 0.0).reproduced

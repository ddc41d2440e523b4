"""`teleop correct`: the policy drives, the operator takes over and hands back (teleop/correction.py).

The takeover rule on commands; the live window with posted key events and a real (tiny) policy; the
simulated corrector headless; --spawns-from; the refusals. A policy is needed, hence under tests/act.
"""

import json

import numpy as np
import pytest

from act_helpers import TINY_MODEL
from cli_helpers import run_cli
from devices.base import Command, Event
from teleop.episode import episode_files, read_episode
from teleop.replay import replay

CLOSE, OPEN = np.array([0, 0, 0, 1.0], np.float32), np.array([0, 0, 0, -1.0], np.float32)
MOVE = Command(translation=(1.0, 0.0, 0.0), gripper=-1.0)
STILL = Command(gripper=-1.0)  # a keyboard's command with no key held: its latched gripper only


@pytest.fixture(scope="module")
def tiny_policy(pick_place_demos, tmp_path_factory):
    run = tmp_path_factory.mktemp("correct") / "run"
    # Three steps leave it failing; its lr is pinned so it keeps failing the way the corrector's rule sees (at
    # 6e-4 it closes the fingers and pushes the puck along the table toward the goal, which the rule, like a
    # person glancing at the hand's heading, lets run).
    res = run_cli("act.train", "--data", str(pick_place_demos), "--out", str(run), "--steps", "3", "--lr", "3e-4",
                  *TINY_MODEL)
    assert res.returncode == 0, res.stderr
    return run


@pytest.fixture(scope="module")
def reach_policy(tmp_path_factory):
    """A tiny reach-v3 policy trained long enough (300 steps, ~5 s) to succeed mostly on its own."""
    from devices.scripted import ScriptedExpert
    from teleop.collect import record_headless

    root = tmp_path_factory.mktemp("reach")
    record_headless(ScriptedExpert("reach-v3"), task="reach-v3", episodes=6, out=root / "demos", seed=100,
                    progress=False)
    res = run_cli("act.train", "--data", str(root / "demos"), "--out", str(root / "run"), "--steps", "300",
                  *TINY_MODEL)
    assert res.returncode == 0, res.stderr
    return root / "run"


# ---------------------------------------------------------------- the rule
def test_input_takes_over_at_once_and_letting_go_hands_back():
    from teleop.correction import Takeover

    rule = Takeover(world_frame=False, hand_back_s=0.5)
    person = np.array([0.3, 0, 0, -1.0], np.float32)
    action, mine = rule.step(STILL, person, CLOSE, now=0.0)
    assert not mine and np.array_equal(action, CLOSE)  # nobody touches the device: the policy drives
    action, mine = rule.step(MOVE, person, CLOSE, now=0.1)
    assert mine and action[0] == pytest.approx(0.3)
    assert action[3] == 1.0  # the gripper stays closed where the policy had it, whatever the latch says
    action, mine = rule.step(STILL, 0 * person, CLOSE, now=0.5)
    assert mine and action[3] == 1.0  # let go 0.4 s ago: the person's "nothing" still holds the arm
    action, mine = rule.step(STILL, 0 * person, OPEN, now=0.61)
    assert not mine and action[3] == -1.0  # 0.51 s without input: the policy drives again
    assert (rule.stats.takeovers, rule.stats.person_steps, rule.stats.policy_steps) == (1, 2, 2)


def test_a_gripper_press_takes_over_and_toggles_from_the_policys_grip():
    from teleop.correction import Takeover

    rule = Takeover(world_frame=False, hand_back_s=0.5)
    press = Command(gripper=1.0, events=frozenset({Event.GRIPPER_TOGGLE}))
    action, mine = rule.step(press, np.zeros(4, np.float32), CLOSE, now=0.0)
    assert mine and action[3] == -1.0  # the policy held it closed: the press opens it
    action, mine = rule.step(press, np.zeros(4, np.float32), CLOSE, now=0.1)
    assert action[3] == 1.0


def test_the_simulated_corrector_is_silent_until_it_has_seen_something_wrong_for_a_reaction_time():
    from devices.corrector import SimulatedCorrector
    from teleop.env import TaskEnv

    env = TaskEnv("reach-v3")
    corrector = SimulatedCorrector("reach-v3", reaction_s=0.3)
    corrector.connect()
    obs = env.reset(rand_vec=np.array([0.0, 0.6, 0.02, 0.0, 0.85, 0.2]))
    commands = []
    for _ in range(80):  # a policy that never moves: the expert wants to, so it is a stall
        corrector.observe(obs)
        commands.append(corrector.poll())
        obs = env.step(np.zeros(4, np.float32))[0]
    env.close()
    silent = [c.gripper is None for c in commands]
    first = silent.index(False)
    # Never before a full window has been seen and a reaction time has passed (the arm settles at first).
    assert corrector.window + corrector.reaction - 1 <= first < 70
    assert not any(c.gripper is None for c in commands[first:])  # and then it drives
    assert corrector.last_reason == "stalled" and corrector.takeovers == 1


# ---------------------------------------------------------------- the live window
def test_the_live_window_records_who_drove_through_posted_keys(tiny_policy, tmp_path):
    import pygame

    from devices.keyboard import KeyboardDevice
    from teleop.correction import load_pilot
    from test_live_window import key, run_with

    seen = {}

    def take_over(c):
        seen["takeover_step"] = c.buffer.t
        key(pygame.KEYDOWN, pygame.K_d)

    def release(c):
        seen["release_step"] = c.buffer.t
        seen["hud"] = c.hud.driver
        key(pygame.KEYUP, pygame.K_d)

    def handed_back(c):
        return c.takeover is not None and not c.takeover.person and c.flow.steps > seen["release_step"] + 2

    script = [
        ("policy drives", lambda c: c.flow.phase.value == "idle", lambda c: key(pygame.KEYDOWN, pygame.K_RETURN)),
        ("take over", lambda c: c.flow.steps >= 20, take_over),
        ("release", lambda c: c.flow.steps >= seen["takeover_step"] + 30, release),
        ("handed back", handed_back, lambda c: seen.setdefault("back_step", c.buffer.t)),
        ("end", lambda c: c.flow.steps >= seen["back_step"] + 15, lambda c: key(pygame.KEYDOWN, pygame.K_RETURN)),
        ("keep", lambda c: c.flow.phase.value == "review", lambda c: key(pygame.KEYDOWN, pygame.K_k)),
    ]
    pilot = load_pilot(str(tiny_policy), task="pick-place-v3")
    result, _ = run_with(KeyboardDevice(), script, tmp_path, task="pick-place-v3", episodes=1, camera="corner",
                         pilot=pilot, hand_back_s=0.3, max_steps=pilot.horizon)
    episode = read_episode(result.written[0])
    assert episode.is_correction and episode.attrs["mode"] == "correct" and episode.attrs["takeovers"] == 1
    mine = episode.intervention
    # The key lands between two ticks: the takeover is on the tick it was read, one step either way.
    start, stop = np.flatnonzero(mine)[[0, -1]]
    assert abs(start - seen["takeover_step"]) <= 1 and mine[start:stop + 1].all()
    assert stop >= seen["release_step"] and stop <= seen["back_step"]
    assert not mine[:start].any() and not mine[stop + 1:].any() and stop + 1 < episode.num_steps
    assert seen["hud"] == "you"
    # Where the policy drove, the simulator got exactly what it asked for; where the person did, not.
    policy = ~mine
    assert np.array_equal(episode.action[policy], episode.policy_action[policy])
    assert not np.allclose(episode.action[start:start + 20, :3], episode.policy_action[start:start + 20, :3])
    assert replay(result.written[0]).exact


# ---------------------------------------------------------------- headless, and bad input
def _results(path, task, seeds_ok, base=1_000_000):
    path.mkdir(parents=True, exist_ok=True)
    episodes = [{"seed": base + i, "success": ok} for i, ok in enumerate(seeds_ok)]
    (path / "results.json").write_text(json.dumps({"task": task, "seed": base, "episodes": episodes}))
    return path


def test_headless_corrections_on_the_failures_of_an_evaluation(tiny_policy, tmp_path):
    evaluation = _results(tmp_path / "eval", "pick-place-v3", [True, False, True, False])
    out = tmp_path / "corr"
    res = run_cli("teleop.cli", "correct", "--ckpt", str(tiny_policy), "--device", "corrector", "--spawns-from",
                  str(evaluation), "--failures-only", "--keep-failures", "--max-steps", "150", "--out", str(out),
                  "--quiet", timeout=300)
    assert res.returncode == 0, res.stderr
    files = episode_files(out)
    assert [read_episode(f).seed for f in files] == [1_000_001, 1_000_003]  # the failures, in order
    for f in files:
        episode = read_episode(f)
        assert episode.attrs["device"] == "corrector" and episode.intervention.any()
        policy = ~episode.intervention
        assert np.array_equal(episode.action[policy], episode.policy_action[policy])
        assert replay(f).exact
    assert "takeovers" in res.stdout and "steps driven by the corrector" in res.stdout
    person = sum(int(read_episode(f).intervention.sum()) for f in files)
    report = run_cli("teleop.cli", "inspect", str(out))
    assert report.returncode == 0, report.stderr
    assert f"corrections: 2 of 2 episodes; {person} steps driven by a person" in report.stdout, report.stdout


def test_spawns_from_puts_failures_first_as_act_eval_drew_them(tmp_path):
    from teleop.correction import spawns_from_results
    from teleop.env import TaskEnv
    from teleop.spawn import SpawnStream

    env = TaskEnv("push-v3")
    _results(tmp_path, "push-v3", [True, False, True, False, True])
    spawns = spawns_from_results(tmp_path, "push-v3", env.spawn_low, env.spawn_high)
    assert [s.seed for s in spawns] == [1_000_001, 1_000_003, 1_000_000, 1_000_002, 1_000_004]
    drawn = SpawnStream(env.spawn_low, env.spawn_high, strategy="random", base_seed=1_000_000)[3]
    assert np.array_equal(spawns[1].candidate, drawn.candidate)
    env.close()


@pytest.mark.parametrize("case", ["other task checkpoint", "other task results", "corrupt checkpoint",
                                  "no failures"])
def test_bad_input_is_one_line_and_writes_nothing(case, tiny_policy, tmp_path):
    ckpt, extra = str(tiny_policy), []
    if case == "other task checkpoint":
        extra = ["--task", "push-v3"]
    elif case == "other task results":
        extra = ["--spawns-from", str(_results(tmp_path / "e", "push-v3", [False]))]
    elif case == "corrupt checkpoint":
        ckpt = tmp_path / "broken.pt"
        ckpt.write_bytes((tiny_policy / "latest.pt").read_bytes()[:5000])
    else:
        extra = ["--spawns-from", str(_results(tmp_path / "e", "pick-place-v3", [True])), "--failures-only"]
    out = tmp_path / "out"
    res = run_cli("teleop.cli", "correct", "--ckpt", str(ckpt), "--device", "corrector", "--out", str(out), *extra)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in res.stderr
    assert not out.exists()


# ---------------------------------------------------------------- sessions
def _plan(tmp_path, body):
    plan = tmp_path / "plan.toml"
    plan.write_text(body)
    return plan


def test_a_session_of_corrections_runs_resumes_and_reports(reach_policy, tmp_path):
    plan = _plan(tmp_path, f'name = "fix"\noperator = "alice"\nmode = "correct"\ndevice = "corrector"\n'
                           f'checkpoint = "{reach_policy}"\n'
                           f'[[task]]\nname = "reach-v3"\nepisodes = 2\n')
    out = tmp_path / "session"
    res = run_cli("teleop.cli", "session", "run", str(plan), "--out", str(out), timeout=600)
    assert res.returncode == 0, res.stderr
    files = sorted(out.rglob("episode_*.hdf5"))
    assert len(files) == 2
    for f in files:
        episode = read_episode(f)
        assert episode.is_correction and episode.attrs["mode"] == "correct" and episode.succeeded
        assert episode.attrs["operator"] == "alice" and episode.attrs["device"] == "corrector"
    again = run_cli("teleop.cli", "session", "run", str(plan), "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert len(sorted(out.rglob("episode_*.hdf5"))) == 2  # done: resuming records nothing more


@pytest.mark.parametrize("case", ["no checkpoint", "checkpoint without correct", "missing checkpoint",
                                  "other task", "recording device"])
def test_a_correction_plan_is_checked_before_anything_is_written(case, tiny_policy, tmp_path):
    top = {"no checkpoint": 'mode = "correct"\n',
           "checkpoint without correct": f'checkpoint = "{tiny_policy}"\n',
           "missing checkpoint": 'mode = "correct"\ncheckpoint = "runs/nothing"\n',
           "other task": f'mode = "correct"\ncheckpoint = "{tiny_policy}"\n',
           "recording device": f'mode = "correct"\ndevice = "scripted"\ncheckpoint = "{tiny_policy}"\n'}[case]
    task = "push-v3" if case == "other task" else "pick-place-v3"
    plan = _plan(tmp_path, f'operator = "alice"\n{top}[[task]]\nname = "{task}"\nepisodes = 1\n')
    out = tmp_path / "session"
    res = run_cli("teleop.cli", "session", "run", str(plan), "--out", str(out))
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert not out.exists()


# ---------------------------------------------------------------- the real window, real X key events
def test_real_keys_take_over_and_hand_back_in_the_real_window(xvfb, tiny_policy, tmp_path):
    """Xvfb + xdotool: Enter lets the policy drive, holding D takes over, letting go hands back; the
    badge says who drives (screenshots in tests/artifacts/correct_*.png: look at them)."""
    import os
    import subprocess
    import sys
    import time

    from cli_helpers import ROOT
    from test_live_xvfb import ARTIFACTS, _finish, _png_pixels, _wait_for_scene, _window_id, _x

    env = {**os.environ, "DISPLAY": xvfb, "TELEOP_CONFIG_DIR": str(tmp_path / "cfg")}
    env.pop("SDL_VIDEODRIVER", None)
    out = tmp_path / "fixes"
    # The untrained pick-place policy never succeeds: the episode ends when the test says so.
    proc = subprocess.Popen([sys.executable, "-m", "teleop.cli", "correct", "--ckpt", str(tiny_policy),
                             "--device", "keyboard", "--episodes", "1", "--hand-back", "0.3", "--keep-failures",
                             "--max-steps", "4000", "--out", str(out)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    window = _window_id(xvfb, "teleop correct", proc)
    assert _x(xvfb, "xdotool", "windowfocus", window).returncode == 0
    _wait_for_scene(xvfb, tmp_path / "start.png", proc)
    ARTIFACTS.mkdir(exist_ok=True)
    shots = {}

    def shot(name):
        shots[name] = ARTIFACTS / f"correct_{name}.png"
        assert _x(xvfb, "import", "-window", "root", str(shots[name])).returncode == 0

    _x(xvfb, "xdotool", "key", "Return")  # the policy drives
    time.sleep(1.5)
    shot("policy")
    _x(xvfb, "xdotool", "keydown", "d")  # take over
    time.sleep(1.5)
    shot("you")
    _x(xvfb, "xdotool", "keyup", "d")
    time.sleep(2.0)  # 0.3 s later the policy drives again
    shot("handed_back")
    _x(xvfb, "xdotool", "key", "Return")  # end the episode
    time.sleep(0.5)
    _x(xvfb, "xdotool", "key", "k")  # keep it
    stdout, stderr = _finish(proc)
    assert proc.returncode == 0, stderr
    episode = read_episode(episode_files(out)[0])
    mine = episode.intervention
    assert episode.attrs["takeovers"] == 1 and mine.any() and not mine[0] and not mine[-1]
    start, stop = np.flatnonzero(mine)[[0, -1]]
    assert mine[start:stop + 1].all()  # one block: from the key press until 0.3 s after its release
    assert replay(episode_files(out)[0]).exact

    def badge_pixels(name, colour):
        """Pixels of the badge colour in the top-right quarter of the screen (where the badge is)."""
        pixels = _png_pixels(shots[name])[:, :, :3]
        h, w = pixels.shape[:2]
        corner = pixels[: h // 2, w // 4: 3 * w // 4]
        return int((np.abs(corner - np.array(colour)).max(axis=-1) < 30).sum())

    orange, blue = (255, 150, 40), (110, 160, 255)  # teleop/live/hud.py: YOU DRIVE, POLICY DRIVES
    assert badge_pixels("you", orange) > 50 and badge_pixels("you", blue) < badge_pixels("policy", blue)
    assert badge_pixels("policy", orange) < 10 and badge_pixels("handed_back", orange) < 10

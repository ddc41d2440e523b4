"""The human-like expert: reproducible per (seed, episode), really perturbed, bounded, and its
recordings still mostly succeed and replay exactly."""

import numpy as np
import pytest
from cli_helpers import run_cli

from devices.humanlike import HumanlikeExpert
from devices.registry import make_device
from devices.scripted import ScriptedExpert
from teleop.mapping import ActionMapper

TASK = "pick-place-v3"
STEPS = 160


@pytest.fixture(scope="module")
def env():
    from teleop.env import TaskEnv

    env = TaskEnv(TASK)
    yield env
    env.close()


@pytest.fixture(scope="module")
def spawn(env):
    from teleop.spawn import SpawnStream

    return SpawnStream(env.spawn_low, env.spawn_high, strategy="stratified", base_seed=0)[3]


def drive(env, spawn, device, steps=STEPS, *, reset=True):
    """Close the loop: the device drives the env from ``spawn``. Returns (commands, observations)."""
    if device.status == "not connected":
        device.connect()
    if reset:
        device.reset()
    mapper = ActionMapper(device.name, device.frame)
    obs = env.reset(spawn)
    translations, grippers, observations = [], [], []
    for _ in range(steps):
        device.observe(obs)
        command = device.poll()
        translations.append(command.translation)
        grippers.append(command.gripper)
        observations.append(obs.copy())
        obs, *_ = env.step(mapper(command))
    return np.array(translations), np.array(grippers, dtype=float), np.array(observations)


def expert_actions(observations, task: str = TASK) -> np.ndarray:
    """The exact expert's action at each of ``observations``, shape (T, 4)."""
    expert = ScriptedExpert(task)
    expert.connect()
    reference = []
    for obs in observations:
        expert.observe(obs)
        reference.append(expert.expert_action())
    return np.array(reference)


def test_same_seed_and_episode_give_identical_commands(env, spawn):
    a = drive(env, spawn, HumanlikeExpert(TASK, seed=7))
    b = drive(env, spawn, HumanlikeExpert(TASK, seed=7))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])  # closed loop: the trajectories are the same too


def test_episode_counter_reseeds_each_episode(env, spawn):
    one = HumanlikeExpert(TASK, seed=7)
    first = drive(env, spawn, one)
    second = drive(env, spawn, one)  # episode 1 of the same device
    assert one.episode == 1
    assert not np.array_equal(first[0], second[0]), "every episode must get its own perturbations"

    fresh = HumanlikeExpert(TASK, seed=7)
    fresh.reset()  # skip episode 0 without driving it: episode 1 depends only on (seed, 1)
    again = drive(env, spawn, fresh)
    np.testing.assert_array_equal(second[0], again[0])


def test_other_seed_differs(env, spawn):
    a = drive(env, spawn, HumanlikeExpert(TASK, seed=1))
    b = drive(env, spawn, HumanlikeExpert(TASK, seed=2))
    assert not np.array_equal(a[0], b[0])


def test_differs_from_the_expert_on_the_same_observations(env, spawn):
    translations, _, observations = drive(env, spawn, HumanlikeExpert(TASK, seed=0))
    reference = expert_actions(observations)
    differs = np.abs(translations - reference[:, :3]).max(axis=1) > 1e-3
    assert differs.mean() > 0.9, f"only {differs.mean():.0%} of the ticks were perturbed"
    # the noise is temporally correlated (OU), not white: consecutive deviations are alike
    deviation = (translations - reference[:, :3])[:, 0]
    assert np.corrcoef(deviation[:-1], deviation[1:])[0, 1] > 0.5


def test_commands_stay_in_range_and_finite_even_with_extreme_settings(env, spawn):
    device = HumanlikeExpert(TASK, seed=3, noise_sigma=2.0, overshoot_rate=40.0, overshoot_gain=(3.0, 5.0),
                             speed_range=(1.0, 1.0))
    translations, grippers, _ = drive(env, spawn, device, steps=200)
    assert np.isfinite(translations).all() and np.isfinite(grippers).all()
    assert np.abs(translations).max() <= 1.0 and np.abs(grippers).max() <= 1.0
    assert np.abs(translations).max() == 1.0  # the clip was needed: sigma 2 saturates


def test_speed_caps_large_commands_and_keeps_small_ones(env, spawn):
    device = HumanlikeExpert(TASK, seed=0, speed_range=(0.5, 0.5), noise_sigma=0.0, hesitation_rate=0.0,
                             overshoot_rate=0.0)
    translations, _, observations = drive(env, spawn, device)
    expert = ScriptedExpert(TASK)
    expert.connect()
    for command, obs in zip(translations, observations):
        expert.observe(obs)
        action = expert.expert_action()[:3]
        peak = np.abs(action).max()
        if peak > 0.5:
            np.testing.assert_allclose(command, action * 0.5 / peak, atol=1e-12)
        else:
            np.testing.assert_allclose(command, action, atol=1e-12)
    assert np.abs(translations).max() == pytest.approx(0.5)


def test_hesitation_pauses_and_overshoot_scales(env, spawn):
    # rate = control_hz: an event starts on the first tick and a new one right after each ends
    paused = HumanlikeExpert(TASK, seed=0, hesitation_rate=80.0, overshoot_rate=0.0)
    translations, _, _ = drive(env, spawn, paused, steps=80)
    assert np.abs(translations).max() < 0.05
    assert paused.episode_params["hesitation_steps"] == 80

    pushed = HumanlikeExpert(TASK, seed=0, overshoot_rate=80.0, hesitation_rate=0.0, noise_sigma=0.0,
                             speed_range=(1.0, 1.0), overshoot_gain=(2.0, 2.0))
    translations, _, observations = drive(env, spawn, pushed, steps=60)
    expert = ScriptedExpert(TASK)
    expert.connect()
    for command, obs in zip(translations, observations):
        expert.observe(obs)
        np.testing.assert_allclose(command, np.clip(2.0 * expert.expert_action()[:3], -1, 1), atol=1e-12)
    assert pushed.episode_params["overshoots"] >= 6


def test_gripper_is_the_expert_command_some_ticks_late(env, spawn):
    device = HumanlikeExpert(TASK, seed=0, gripper_delay_s=(0.1, 0.1), noise_sigma=0.0, hesitation_rate=0.0,
                             overshoot_rate=0.0)  # 8 ticks at 80 Hz
    _, grippers, observations = drive(env, spawn, device, steps=STEPS)
    expert = ScriptedExpert(TASK)
    expert.connect()
    reference = []
    for obs in observations:
        expert.observe(obs)
        reference.append(expert.expert_action()[3])
    reference = np.array(reference)
    assert reference.min() != reference.max(), "the expert never toggled the gripper in this window"
    np.testing.assert_array_equal(grippers[8:], reference[:-8])
    np.testing.assert_array_equal(grippers[:8], reference[0])


def test_registry_builds_it():
    device = make_device("humanlike", task=TASK, seed=5)
    assert isinstance(device, HumanlikeExpert) and device.seed == 5 and device.frame == "world"


def test_recorded_episodes_mostly_succeed_and_replay_exactly(env, tmp_path):
    from teleop.episode import episode_files, read_episode

    out = tmp_path / "human"
    result = run_cli("teleop.cli", "record", "--device", "humanlike", "--task", TASK, "--episodes", "4",
                     "--seed", "0", "--keep-failures", "--hold-steps", "5", "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    files = episode_files(out)
    assert len(files) == 4
    episodes = [read_episode(f) for f in files]
    assert all(e.attrs["device"] == "humanlike" for e in episodes)
    assert sum(e.succeeded for e in episodes) >= 3

    # slower than the expert on the very same spawns
    from teleop.collect import run_episode
    from teleop.spawn import SpawnStream

    stream = SpawnStream(env.spawn_low, env.spawn_high, strategy="stratified", base_seed=0)
    expert = ScriptedExpert(TASK)
    expert.connect()
    expert_steps = []
    for e in episodes:
        spawn = stream[int(e.attrs["spawn_index"])]
        assert spawn.seed == e.seed
        result = run_episode(env, expert, ActionMapper("scripted", "world"), env.reset(spawn), None, hold_steps=5)
        expert_steps.append(result.steps)
    assert np.mean([e.num_steps for e in episodes]) > 1.2 * np.mean(expert_steps)

    replayed = run_cli("teleop.cli", "replay", "--verify", str(out))
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "4 of 4 episodes replay exactly" in replayed.stdout

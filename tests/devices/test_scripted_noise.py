"""The scripted expert with injected noise (`teleop record --expert-noise`, DART): reproducible per (seed,
episode), zero-mean around the expert's own action, gripper untouched, stored in every episode, and the
recordings still replay exactly."""

import numpy as np
import pytest
from cli_helpers import load_benchmark, run_cli
from test_humanlike import TASK, drive, env, expert_actions, spawn  # noqa: F401  (module fixtures)

from devices.base import DeviceError
from devices.scripted import ScriptedExpert
from teleop.episode import episode_files, read_episode


def test_zero_noise_is_the_expert_itself(env, spawn):  # noqa: F811
    plain = drive(env, spawn, ScriptedExpert(TASK))
    zero = drive(env, spawn, ScriptedExpert(TASK, noise=0.0, seed=5))
    np.testing.assert_array_equal(plain[0], zero[0])


def test_noise_is_reproducible_per_seed_and_episode(env, spawn):  # noqa: F811
    a = drive(env, spawn, ScriptedExpert(TASK, noise=0.3, seed=7))
    b = drive(env, spawn, ScriptedExpert(TASK, noise=0.3, seed=7))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[2], b[2])
    one = ScriptedExpert(TASK, noise=0.3, seed=7)
    drive(env, spawn, one)
    second = drive(env, spawn, one)
    assert not np.array_equal(a[0], second[0]), "every episode must get its own noise"
    other = drive(env, spawn, ScriptedExpert(TASK, noise=0.3, seed=8))
    assert not np.array_equal(a[0], other[0])


def test_noise_perturbs_the_translation_only_and_is_centred_on_the_expert(env, spawn):  # noqa: F811
    translations, grippers, observations = drive(env, spawn, ScriptedExpert(TASK, noise=0.3, seed=0))
    reference = expert_actions(observations)
    np.testing.assert_array_equal(grippers, reference[:, 3])
    free = np.abs(reference[:, :3]) < 0.5  # far from the clip, the noise is plain Gaussian
    deviation = (translations - reference[:, :3])[free]
    assert abs(np.median(deviation)) < 0.05
    assert 0.2 < deviation.std() < 0.4
    assert np.abs(translations).max() <= 1.0


def test_bad_noise_is_refused():
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(DeviceError, match="expert noise"):
            ScriptedExpert(TASK, noise=bad)


def test_record_with_noise_stores_it_and_replays_exactly(tmp_path):
    out = tmp_path / "noisy"
    rec = run_cli("teleop.cli", "record", "--device", "scripted", "--task", "reach-v3", "--episodes", "2",
                  "--expert-noise", "0.3", "--seed", "3", "--out", str(out), "--quiet")
    assert rec.returncode == 0, rec.stderr
    episodes = [read_episode(p) for p in episode_files(out)]
    assert [e.attrs["expert_noise"] for e in episodes] == [0.3, 0.3]
    assert all(e.attrs["device"] == "scripted" for e in episodes)  # trained as scripted demos
    rep = run_cli("teleop.cli", "replay", "--verify", str(out))
    assert rep.returncode == 0, rep.stdout + rep.stderr
    assert "2 of 2 episodes replay exactly" in rep.stdout
    # benchmarks/expert_labels.py: the same states labelled with the exact expert's actions (DART's labels)
    labels = load_benchmark("expert_labels")
    assert labels.relabel(out, tmp_path / "clean") > 0.05
    clean = [read_episode(p) for p in episode_files(tmp_path / "clean")]
    for noisy, relabelled in zip(episodes, clean):
        np.testing.assert_array_equal(noisy.state, relabelled.state)
        np.testing.assert_allclose(relabelled.action, expert_actions(relabelled.state, "reach-v3"), atol=1e-6)
    bad = run_cli("teleop.cli", "record", "--device", "scripted", "--task", "reach-v3", "--episodes", "1",
                  "--expert-noise", "-1", "--out", str(tmp_path / "bad"), "--quiet")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "expert noise" in bad.stderr


def test_noise_for_another_device_is_refused(tmp_path):
    for extra in (["--device", "humanlike"], ["--device", "scripted", "--show"]):
        bad = run_cli("teleop.cli", "record", *extra, "--task", "reach-v3", "--episodes", "1", "--expert-noise", "0.1",
                      "--out", str(tmp_path / "bad"), "--quiet")
        assert bad.returncode == 2 and "--expert-noise" in bad.stderr, bad.stderr
        assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())

"""`teleop export --format robomimic`: the file is read back key by key against the episode files."""

import json

import h5py
import numpy as np
import pytest

from cli_helpers import run_cli, run_operator_sessions
from teleop.episode import episode_files, read_episode

PLAN = """\
name = "export-test"
operators = ["alice", "bob"]
device = "scripted"

[[task]]
name = "push-v3"
episodes = 2
"""


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    from teleop.datasets.merge import merge

    root = tmp_path_factory.mktemp("export")
    merge(run_operator_sessions(root, PLAN), root / "merged")
    return root / "merged"


def _final_obs_reference(episode):
    """The observation after the last action, by a plain replay."""
    from teleop.env import MAX_STEPS, TaskEnv

    with TaskEnv(episode.task, max_steps=max(MAX_STEPS, episode.num_steps)) as env:
        env.reset(rand_vec=episode.rand_vec)
        for action in episode.action:
            obs, *_ = env.step(action)
    return obs


def test_robomimic_export_reads_back_key_by_key(merged, tmp_path):
    out = tmp_path / "push.hdf5"
    res = run_cli("teleop.cli", "export", "--format", "robomimic", str(merged), str(out), "--quiet")
    assert res.returncode == 0, res.stderr
    assert "exported 4 demos" in res.stdout
    episodes = [read_episode(p) for p in episode_files(merged)]
    assert not list(tmp_path.glob(".*partial"))
    with h5py.File(out, "r") as f:
        assert set(f.keys()) == {"data", "mask"}
        data = f["data"]
        assert sorted(data.keys()) == ["demo_0", "demo_1", "demo_2", "demo_3"]
        assert int(data.attrs["total"]) == sum(e.num_steps for e in episodes)
        env_args = json.loads(data.attrs["env_args"])
        assert env_args["env_name"] == "push-v3" and env_args["type"] == 2
        assert isinstance(env_args["env_kwargs"], dict) and env_args["env_kwargs"]["control_hz"] == 80.0
        for i, episode in enumerate(episodes):
            demo = data[f"demo_{i}"]
            t = episode.num_steps
            assert int(demo.attrs["num_samples"]) == t
            assert int(demo.attrs["seed"]) == episode.seed and demo.attrs["operator"] == episode.attrs["operator"]
            assert set(demo.keys()) == {"obs", "next_obs", "actions", "rewards", "dones", "states"}
            assert set(demo["obs"].keys()) == set(demo["next_obs"].keys()) == {
                "state", "qpos", "qvel", "eef_pos", "gripper", "object", "goal"}
            np.testing.assert_array_equal(demo["obs/state"][()], episode.state)
            np.testing.assert_array_equal(demo["obs/eef_pos"][()], episode.state[:, 0:3])
            np.testing.assert_array_equal(demo["obs/qpos"][()], episode.qpos)
            np.testing.assert_array_equal(demo["next_obs/state"][:-1], episode.state[1:])
            np.testing.assert_array_equal(demo["next_obs/qvel"][:-1], episode.qvel[1:])
            np.testing.assert_array_equal(demo["next_obs/state"][-1], _final_obs_reference(episode))
            np.testing.assert_array_equal(demo["actions"][()], episode.action)
            np.testing.assert_array_equal(demo["rewards"][()], episode.reward)
            np.testing.assert_array_equal(demo["states"][()], episode.sim_state)
            dones = demo["dones"][()]
            assert dones.shape == (t,) and dones[-1] == 1 and dones.sum() == 1
        mask = f["mask"]
        train = [n.decode() for n in mask["train"][()]]
        valid = [n.decode() for n in mask["valid"][()]]
        assert mask["train"].dtype.kind == "S"
        assert sorted(train + valid) == sorted(data.keys()) and len(valid) == 1
        assert [n.decode() for n in mask["operator_alice"][()]] == ["demo_0", "demo_1"]
        assert [n.decode() for n in mask["operator_bob"][()]] == ["demo_2", "demo_3"]


def test_export_refuses_duplicates_and_a_wrong_output_name(merged, tmp_path):
    res = run_cli("teleop.cli", "export", "--format", "robomimic", str(merged), str(merged), str(tmp_path / "d.hdf5"))
    assert res.returncode == 2 and "same seed" in res.stderr and "--skip-duplicates" in res.stderr
    assert not (tmp_path / "d.hdf5").exists()
    session = merged.parent / "alice"
    res = run_cli("teleop.cli", "export", "--format", "robomimic", str(session), str(merged), str(tmp_path / "t.hdf5"))
    assert res.returncode == 2 and "same seed" in res.stderr  # the merged folder repeats alice's episodes
    res = run_cli("teleop.cli", "export", "--format", "robomimic", "--task", "push-v3", "--quiet", str(session),
                  str(tmp_path / "alice.hdf5"))
    assert res.returncode == 0, res.stderr
    with h5py.File(tmp_path / "alice.hdf5", "r") as f:
        assert len(f["data"]) == 2 and json.loads(f["data"].attrs["env_args"])["env_name"] == "push-v3"
    res = run_cli("teleop.cli", "export", "--format", "robomimic", str(merged), str(tmp_path / "out.txt"))
    assert res.returncode == 2 and "must end in .hdf5" in res.stderr


def test_an_episode_longer_than_metaworlds_500_steps_replays_and_exports_exactly(tmp_path):
    # A slow demo recorded with a longer step limit (the scripted expert succeeds, then holds until it).
    from devices.scripted import ScriptedExpert
    from teleop.collect import record_headless
    from teleop.replay import replay

    (path,) = record_headless(ScriptedExpert("push-v3"), task="push-v3", episodes=1, out=tmp_path / "slow",
                              seed=3, max_steps=510, hold_steps=10_000, progress=False)
    episode = read_episode(path)
    assert episode.num_steps == 510
    report = replay(path)
    assert report.exact and report.steps == 510, report
    out = tmp_path / "slow.hdf5"
    res = run_cli("teleop.cli", "export", "--format", "robomimic", str(tmp_path / "slow"), str(out), "--quiet")
    assert res.returncode == 0, res.stderr
    with h5py.File(out, "r") as f:
        assert json.loads(f["data"].attrs["env_args"])["env_kwargs"]["max_episode_steps"] == 510
        np.testing.assert_array_equal(f["data/demo_0/next_obs/state"][-1], _final_obs_reference(episode))

"""The episode file contract: names, shapes, dtypes, atomic writes, damaged and foreign files."""

import h5py
import numpy as np
import pytest

from teleop.episode import (REQUIRED_ATTRS, SCHEMA, EpisodeError, episode_files, read_attrs, read_episode,
                            write_episode)


def test_recorded_file_follows_the_contract(pick_place_demos):
    files = episode_files(pick_place_demos)
    assert [p.name for p in files] == [f"episode_{i:06d}.hdf5" for i in range(6)]
    with h5py.File(files[0], "r") as f:
        for key in REQUIRED_ATTRS:
            assert key in f.attrs, key
        assert f.attrs["schema"] == SCHEMA
        assert f.attrs["task"] == "pick-place-v3"
        t = int(f.attrs["num_steps"])
        assert f["observations/state"].shape == (t, 39)
        assert f["observations/qpos"].shape == (t, 9)
        assert f["observations/qvel"].shape == (t, 9)
        assert f["action"].shape == (t, 4) and f["action"].dtype == np.float32
        assert f["reward"].shape == (t,)
        assert f["success"].shape == (t,) and f["success"].dtype == bool
        assert f["sim_state"].shape[0] == t
        assert bool(f.attrs["success"]) and f["success"][-1]
        assert len(f.attrs["rand_vec"]) == 6
        assert f.attrs["control_hz"] == 80.0
        assert f.attrs["started_at"].endswith("Z") and f.attrs["ended_at"] >= f.attrs["started_at"]
    episode = read_episode(files[0])
    assert np.all(np.abs(episode.action) <= 1.0)
    # The first observation's object position is the recorded spawn.
    np.testing.assert_array_equal(episode.state[0, 4:7], episode.object_init_pos)
    assert set(episode.attrs["versions"]) == {"toolkit", "metaworld", "mujoco", "python"}


def test_images_are_chunked_one_frame_per_chunk_and_compressed(tmp_path):
    from devices.scripted import ScriptedExpert
    from teleop.collect import record_headless

    record_headless(ScriptedExpert("reach-v3"), task="reach-v3", episodes=1, out=tmp_path, seed=3,
                    cameras=("corner2", "gripperPOV"), image_size=64, progress=False)
    path = episode_files(tmp_path)[0]
    with h5py.File(path, "r") as f:
        t = int(f.attrs["num_steps"])
        for camera in ("corner2", "gripperPOV"):
            ds = f[f"observations/images/{camera}"]
            assert ds.shape == (t, 64, 64, 3) and ds.dtype == np.uint8
            assert ds.chunks == (1, 64, 64, 3)
            assert ds.compression is not None
            assert ds[0].std() > 5  # a real rendered picture, not a blank frame
    episode = read_episode(path, images=["corner2"])
    assert set(episode.images) == {"corner2"}


def test_truncated_file_is_named_in_the_error(pick_place_demos, tmp_path):
    src = episode_files(pick_place_demos)[0]
    damaged = tmp_path / "episode_000000.hdf5"
    damaged.write_bytes(src.read_bytes()[: src.stat().st_size // 3])
    with pytest.raises(EpisodeError, match="episode_000000.hdf5"):
        read_episode(damaged)


def test_wrong_schema_is_refused_with_the_reason(pick_place_demos, tmp_path):
    copy = tmp_path / "episode_000000.hdf5"
    copy.write_bytes(episode_files(pick_place_demos)[0].read_bytes())
    with h5py.File(copy, "a") as f:
        f.attrs["schema"] = "teleop-episode/99"
    with pytest.raises(EpisodeError, match="teleop-episode/99.*not supported"):
        read_attrs(copy)


def test_nan_in_a_file_is_refused(pick_place_demos, tmp_path):
    copy = tmp_path / "episode_000000.hdf5"
    copy.write_bytes(episode_files(pick_place_demos)[0].read_bytes())
    with h5py.File(copy, "a") as f:
        f["action"][3, 1] = np.nan
    with pytest.raises(EpisodeError, match="NaN"):
        read_episode(copy)


def test_write_is_atomic_and_cleans_up_on_failure(pick_place_demos, tmp_path):
    episode = read_episode(episode_files(pick_place_demos)[0])
    target = tmp_path / "episode_000000.hdf5"
    write_episode(target, episode)
    assert read_episode(target).num_steps == episode.num_steps
    assert [p.name for p in tmp_path.iterdir()] == ["episode_000000.hdf5"]

    bad = read_episode(target)
    bad.images = {"corner2": np.zeros((bad.num_steps + 1, 8, 8, 3), np.uint8)}  # wrong length
    with pytest.raises(EpisodeError):
        write_episode(tmp_path / "episode_000001.hdf5", bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["episode_000000.hdf5"]


def test_temporary_files_are_never_listed(tmp_path, pick_place_demos):
    (tmp_path / ".episode_000000.hdf5.partial").write_bytes(b"half")
    (tmp_path / "episode_000001.hdf5").write_bytes(episode_files(pick_place_demos)[1].read_bytes())
    assert [p.name for p in episode_files(tmp_path)] == ["episode_000001.hdf5"]


def test_a_schema_1_file_still_reads_everywhere(tmp_path):
    """tests/data/episode_schema1.hdf5 was written before schema 2 (338dfdb): it reads, has no correction
    data, and training, inspect, replay and both exports accept it."""
    from cli_helpers import ROOT

    old = ROOT / "tests" / "data" / "episode_schema1.hdf5"
    episode = read_episode(old)
    assert episode.attrs["schema"] == "teleop-episode/1" and not episode.is_correction
    assert episode.num_steps == 30 and episode.task == "pick-place-v3"
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "episode_000000.hdf5").write_bytes(old.read_bytes())
    from act.data import load_dataset

    assert load_dataset(folder).episodes[0].num_steps == 30
    from cli_helpers import run_cli

    res = run_cli("teleop.cli", "inspect", str(folder))
    assert res.returncode == 0, res.stderr
    assert "corrections" not in res.stdout
    from teleop.replay import replay

    # Written on another host: the MuJoCo states replay bit for bit, observations and rewards up to
    # rounding (on an AVX2-only host 1.1e-16 / 8.3e-17; `exact` on the host that wrote it).
    report = replay(folder / "episode_000000.hdf5")
    assert report.reproduced and report.max_sim_state_diff == 0.0, report
    for fmt, out in (("robomimic", tmp_path / "old.hdf5"), ("lerobot", tmp_path / "lerobot")):
        res = run_cli("teleop.cli", "export", "--format", fmt, str(folder), str(out))
        assert res.returncode == 0, res.stderr


def test_correction_data_round_trips_and_is_checked(pick_place_demos, tmp_path):
    episode = read_episode(episode_files(pick_place_demos)[0])
    t = episode.num_steps
    episode.intervention = np.arange(t) % 3 == 0
    episode.policy_action = np.full((t, 4), 0.25, np.float32)
    path = write_episode(tmp_path / "episode_000000.hdf5", episode)
    again = read_episode(path)
    assert again.attrs["schema"] == SCHEMA == "teleop-episode/2" and again.is_correction
    assert np.array_equal(again.intervention, episode.intervention)
    assert np.array_equal(again.policy_action, episode.policy_action)
    episode.policy_action = episode.policy_action[:-1]
    with pytest.raises(EpisodeError, match="policy_action has shape"):
        write_episode(tmp_path / "episode_000001.hdf5", episode)
    episode.policy_action = None
    with pytest.raises(EpisodeError, match="needs both"):
        write_episode(tmp_path / "episode_000001.hdf5", episode)
    assert not (tmp_path / "episode_000001.hdf5").exists()

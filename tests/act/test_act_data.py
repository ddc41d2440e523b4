"""act/data.py: loading, chunking and padding against a plain reference, the split, the guard."""

import os
import shutil
import warnings

import numpy as np
import pytest

from act.data import (ChunkDataset, DataError, SingleSpawnError, StateSpec, check_spawn_diversity,
                      load_dataset, split_episodes, step_indices)
from act.normalize import Normalizer


def reference_chunk(episode, t, k):
    """The obvious definition: actions t..t+K-1, zero rows and pad=True past the end."""
    action = np.zeros((k, episode.action.shape[1]), np.float32)
    pad = np.ones(k, bool)
    for j in range(k):
        if t + j < episode.num_steps:
            action[j] = episode.action[t + j]
            pad[j] = False
    return episode.state[t], action, pad


def test_chunks_and_padding_match_reference(pick_place_demos):
    dataset = load_dataset(pick_place_demos)
    assert dataset.task == "pick-place-v3" and len(dataset.episodes) == 6 and not dataset.skipped
    k = 20
    samples = ChunkDataset(dataset.episodes, k)
    assert len(samples) == sum(e.num_steps for e in dataset.episodes)
    batch = samples.__getitems__(np.arange(len(samples)))
    assert batch["state"].shape == (len(samples), 39)
    assert batch["action"].shape == (len(samples), k, 4)
    assert batch["action_pad"].shape == (len(samples), k) and batch["action_pad"].dtype == bool
    i = 0
    for episode in dataset.episodes:
        for t in range(episode.num_steps):
            state, action, pad = reference_chunk(episode, t, k)
            np.testing.assert_array_equal(batch["state"][i], state)
            np.testing.assert_array_equal(batch["action"][i], action)
            np.testing.assert_array_equal(batch["action_pad"][i], pad)
            i += 1
    # The last step of an episode has exactly one real action.
    last = dataset.episodes[0].num_steps - 1
    assert batch["action_pad"][last].sum() == k - 1


def test_normalized_samples_zero_the_padding(pick_place_demos):
    dataset = load_dataset(pick_place_demos)
    eps = dataset.episodes
    norm = Normalizer.from_data(np.concatenate([e.state for e in eps]), np.concatenate([e.action for e in eps]))
    samples = ChunkDataset(eps, 20, norm)
    one = samples[eps[0].num_steps - 3]
    assert one["action_pad"].tolist() == [False] * 3 + [True] * 17
    np.testing.assert_allclose(one["action"][:3], norm.normalize_action(eps[0].action[-3:]), rtol=1e-6)
    assert np.all(one["action"][3:] == 0)
    np.testing.assert_allclose(one["state"], norm.normalize_state(eps[0].state[-3]), rtol=1e-6)


def test_state_slices_and_qpos(pick_place_demos):
    spec = StateSpec.parse("0:4,36:39", qpos=True)
    dataset = load_dataset(pick_place_demos, spec=spec)
    episode = dataset.episodes[0]
    assert episode.state.shape[1] == 4 + 3 + 9
    from teleop.episode import read_episode

    raw = read_episode(episode.path)
    np.testing.assert_array_equal(episode.state[:, :4], raw.state[:, :4].astype(np.float32))
    np.testing.assert_array_equal(episode.state[:, 7:], raw.qpos.astype(np.float32))
    assert StateSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(DataError, match="START:STOP"):
        StateSpec.parse("0-4")
    with pytest.raises(DataError, match="0 <= START < STOP <= 39"):
        StateSpec.parse("30:40")


def test_relative_vectors_follow_the_state(pick_place_demos):
    from teleop.episode import read_episode

    spec = StateSpec.parse("", relative=True)
    episode = load_dataset(pick_place_demos, spec=spec).episodes[0]
    raw = read_episode(episode.path).state
    assert episode.state.shape[1] == 39 + 9
    hand, obj, goal = raw[:, 0:3], raw[:, 4:7], raw[:, 36:39]
    for i, vector in enumerate((obj - hand, goal - obj, goal - hand)):
        np.testing.assert_allclose(episode.state[:, 39 + 3 * i:42 + 3 * i], vector, atol=1e-6)
    assert StateSpec.from_dict(spec.to_dict()) == spec
    old = {"slices": [[0, 39]], "qpos": False}  # a checkpoint written before the field existed
    assert StateSpec.from_dict(old) == StateSpec()


def test_fine_vectors_resolve_the_last_centimetres(pick_place_demos):
    spec = StateSpec.parse("", relative=True, fine=0.02)
    episode = load_dataset(pick_place_demos, spec=spec).episodes[0]
    coarse = load_dataset(pick_place_demos, spec=StateSpec.parse("", relative=True)).episodes[0]
    assert episode.state.shape[1] == 39 + 9 + 9
    np.testing.assert_array_equal(episode.state[:, :48], coarse.state)
    np.testing.assert_allclose(episode.state[:, 48:], np.tanh(coarse.state[:, 39:] / 0.02), atol=1e-6)
    # 1 cm from the target reads 0.46, 2 cm 0.76: the last centimetres span most of the range.
    assert np.tanh(0.01 / 0.02) == pytest.approx(0.462, abs=1e-3)
    assert StateSpec.from_dict(spec.to_dict()) == spec
    assert StateSpec.from_dict({"slices": [[0, 39]], "qpos": False, "relative": True}).fine == 0.0
    assert StateSpec.parse("", relative=False, fine=0.02).fine == 0.0  # nothing to refine without the vectors


def test_idle_steps_are_pauses_not_grasps():
    from act.data import idle_steps

    t = 12
    state = np.zeros((t, 39))
    action = np.zeros((t, 4))
    state[:, 0] = np.r_[0.0, 0.01, 0.02, 0.03, 0.03, 0.03, 0.03, 0.03, 0.03, 0.03, 0.04, 0.05]  # hand x
    action[:3, 0] = action[9:, 0] = 1.0  # moving: 1 cm a step
    action[3:6, 0] = 0.001  # a pause: tiny command, nothing moves (steps 3, 4, 5)
    state[7:10, 3] = [0.5, 0.4, 0.3]  # steps 6-8: hand still, fingers closing on an object
    action[6:9, 3] = 1.0
    idle = idle_steps(state, action)
    assert np.flatnonzero(idle).tolist() == [3, 4, 5]


def test_drop_idle_leaves_out_pauses_and_maps_frames(pick_place_demos):
    full = load_dataset(pick_place_demos)
    dropped = load_dataset(pick_place_demos, drop_idle=True)
    before = sum(e.num_steps for e in full.episodes)
    after = sum(e.num_steps for e in dropped.episodes)
    assert dropped.idle_dropped == before - after
    for a, b in zip(full.episodes, dropped.episodes):
        np.testing.assert_array_equal(b.state, a.state[b.frames])  # rows are the file's kept steps
        np.testing.assert_array_equal(b.action, a.action[b.frames])


def test_drop_idle_by_default_only_for_demos_recorded_by_a_person(pick_place_demos, tmp_path):
    from devices.humanlike import HumanlikeExpert
    from teleop.collect import record_headless

    human = tmp_path / "human"  # the human-like device pauses now and then (hesitations)
    record_headless(HumanlikeExpert("pick-place-v3", seed=0, hesitation_rate=4.0), task="pick-place-v3",
                    episodes=2, out=human, seed=0, keep_failures=True, max_steps=120, progress=False)
    auto = load_dataset(human, drop_idle=None)
    assert auto.idle_dropped > 0
    assert auto.idle_dropped == load_dataset(human, drop_idle=True).idle_dropped
    assert load_dataset(human, drop_idle=False).idle_dropped == 0
    # The scripted expert's episodes are kept whole unless drop_idle=True says otherwise.
    assert load_dataset(pick_place_demos, drop_idle=None).idle_dropped == 0
    kept = load_dataset(pick_place_demos, drop_idle=None)
    assert all(e.frames is None for e in kept.episodes)
    # Who recorded the data also picks the checkpoint's inference (act.config.default_inference).
    assert auto.recorded_by_person and not kept.recorded_by_person
    both = load_dataset([pick_place_demos, human], drop_idle=None)
    # The recipe follows who drove most of the rows (test_act_corrections has the mixed cases).
    assert both.recorded_by_person == (both.person_rows >= both.scripted_rows) and both.person_rows > 0
    assert both.scripted_rows == sum(e.num_steps for e in kept.episodes)


def test_split_is_by_episode_seeded_and_disjoint():
    train, val = split_episodes(20, 0.1, seed=3)
    assert len(val) == 2 and len(train) == 18
    assert sorted(train + val) == list(range(20)) and not set(train) & set(val)
    assert split_episodes(20, 0.1, seed=3) == (train, val)
    assert split_episodes(20, 0.1, seed=4) != (train, val)
    assert split_episodes(1, 0.5, seed=0) == ([0], [])  # never leaves training empty
    assert split_episodes(3, 0.0, seed=0) == ([0, 1, 2], [])
    with pytest.raises(DataError):
        split_episodes(5, 1.0, seed=0)


def test_split_samples_never_mix(pick_place_demos):
    dataset = load_dataset(pick_place_demos)
    train, val = split_episodes(len(dataset.episodes), 0.34, seed=0)
    train_set = ChunkDataset([dataset.episodes[i] for i in train], 5)
    val_set = ChunkDataset([dataset.episodes[i] for i in val], 5)
    train_states = {row.tobytes() for row in train_set.state}
    assert not any(row.tobytes() in train_states for row in val_set.state)


def test_step_indices_are_a_function_of_seed_step_rank():
    a = step_indices(1000, 64, seed=1, step=7, rank=0)
    np.testing.assert_array_equal(a, step_indices(1000, 64, seed=1, step=7, rank=0))
    assert not np.array_equal(a, step_indices(1000, 64, seed=1, step=8, rank=0))
    assert not np.array_equal(a, step_indices(1000, 64, seed=1, step=7, rank=1))
    assert a.min() >= 0 and a.max() < 1000


def test_missing_and_empty_folders_are_refused(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_dataset(tmp_path / "nope")
    with pytest.raises(DataError, match="no episode_"):
        load_dataset(tmp_path)


def test_corrupt_file_skipped_or_refused_when_strict(pick_place_demos, tmp_path):
    for path in sorted(pick_place_demos.glob("episode_*.hdf5"))[:3]:
        shutil.copy(path, tmp_path / path.name)
    victim = sorted(tmp_path.glob("episode_*.hdf5"))[1]
    victim.write_bytes(victim.read_bytes()[:2000])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = load_dataset(tmp_path)
    assert len(dataset.episodes) == 2 and len(dataset.skipped) == 1
    assert any(victim.name in str(w.message) for w in caught)
    with pytest.raises(DataError, match="--strict"):
        load_dataset(tmp_path, strict=True)


def test_nan_is_refused_even_without_strict(pick_place_demos, tmp_path):
    import h5py

    for path in sorted(pick_place_demos.glob("episode_*.hdf5"))[:2]:
        shutil.copy(path, tmp_path / path.name)
    with h5py.File(sorted(tmp_path.glob("episode_*.hdf5"))[1], "r+") as f:
        f["observations/state"][3, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        load_dataset(tmp_path)


def test_guard_refuses_single_spawn(fixed_spawn_demos, pick_place_demos):
    dataset = load_dataset(fixed_spawn_demos)
    with pytest.raises(SingleSpawnError, match="--allow-single-spawn"):
        check_spawn_diversity(dataset.episodes, dataset, allow_single_spawn=False)
    with pytest.warns(UserWarning, match="same spawn"):
        check_spawn_diversity(dataset.episodes, dataset, allow_single_spawn=True)
    varied = load_dataset(pick_place_demos)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not check_spawn_diversity(varied.episodes, varied, allow_single_spawn=False).degenerate


def test_images_are_read_lazily_per_process(image_demos):
    dataset = load_dataset(image_demos, cameras=("corner2",))
    assert dataset.image_size == (32, 32)
    samples = ChunkDataset(dataset.episodes, 5, cameras=("corner2",))
    batch = samples.__getitems__(np.array([0, 3, len(samples) - 1]))
    assert batch["images"].shape == (3, 1, 3, 32, 32) and batch["images"].dtype == np.float32
    assert 0.0 <= batch["images"].min() and batch["images"].max() <= 1.0 and batch["images"].max() > 0
    from teleop.episode import read_episode

    frame = read_episode(dataset.episodes[0].path, images=True).images["corner2"][3]  # (H, W, 3)
    np.testing.assert_array_equal(batch["images"][1, 0], frame.transpose(2, 0, 1) / np.float32(255))
    assert samples._pid == os.getpid() and len(samples._files) == 2
    state = samples.__getstate__()
    assert state["_files"] == {} and state["_pid"] is None  # a spawned worker opens its own handles
    samples.close()
    with pytest.raises(DataError, match="no images for camera"):
        load_dataset(image_demos, cameras=("topview",))


def test_dataloader_workers_give_the_same_batches(image_demos):
    import torch

    from act.data import StepBatches, collate

    dataset = load_dataset(image_demos, cameras=("corner2",))
    samples = ChunkDataset(dataset.episodes, 5, cameras=("corner2",))
    batches = StepBatches(len(samples), 4, seed=0, rank=0, start_step=3, stop_step=6)
    in_process = list(torch.utils.data.DataLoader(samples, batch_sampler=batches, collate_fn=collate))
    workers = list(torch.utils.data.DataLoader(samples, batch_sampler=batches, collate_fn=collate,
                                               num_workers=2))
    assert len(in_process) == len(workers) == 3
    for a, b in zip(in_process, workers):
        assert a.keys() == b.keys() == {"state", "action", "action_pad", "images"}
        for key in a:
            assert torch.equal(a[key], b[key]), key
    first = samples.__getitems__(step_indices(len(samples), 4, seed=0, step=3))
    assert torch.equal(in_process[0]["images"], torch.from_numpy(first["images"]))

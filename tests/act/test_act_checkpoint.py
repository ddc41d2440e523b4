"""act/checkpoint.py: plain dicts, atomic writes, loading that never runs code."""

import os
import pickle

import pytest
import torch

from act.checkpoint import CHECKPOINT_KEYS, FORMAT, CheckpointError, load_checkpoint, open_checkpoint, save_checkpoint

torch.set_num_threads(1)


def minimal_checkpoint(**changes):
    checkpoint = {key: {} for key in CHECKPOINT_KEYS}
    checkpoint.update(format=FORMAT, step=3, model={"w": torch.arange(4.0)})
    checkpoint.update(changes)
    return checkpoint


class WritesAFile:
    """A pickle payload: unpickling it runs os.system and creates a file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_round_trip_and_atomic_write(tmp_path):
    path = save_checkpoint(tmp_path / "latest.pt", minimal_checkpoint())
    loaded = load_checkpoint(path)
    assert loaded["step"] == 3 and torch.equal(loaded["model"]["w"], torch.arange(4.0))
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]  # no temporary left behind
    assert open_checkpoint(tmp_path)[0] == path


def test_a_run_folder_resolves_to_latest_unless_best_was_chosen_by_success(tmp_path):
    latest = save_checkpoint(tmp_path / "latest.pt", minimal_checkpoint(step=3000))
    best = save_checkpoint(tmp_path / "best.pt", minimal_checkpoint(step=700, train_args={"eval_every": 0}))
    assert open_checkpoint(tmp_path)[0] == latest  # lowest validation loss: not the policy to run
    assert open_checkpoint(tmp_path)[1]["step"] == 3000  # and the checkpoint read is that file's
    save_checkpoint(best, minimal_checkpoint(step=700, train_args={"eval_every": 250}))
    assert open_checkpoint(tmp_path)[0] == best  # highest rollout success: run it
    latest.unlink()
    assert open_checkpoint(tmp_path)[0] == best  # whatever the folder has
    assert open_checkpoint(best)[0] == best  # a file is taken as given


def test_saving_refuses_non_plain_values(tmp_path):
    with pytest.raises(TypeError, match="plain types"):
        save_checkpoint(tmp_path / "x.pt", minimal_checkpoint(train_args={"path": tmp_path}))
    assert not (tmp_path / "x.pt").exists()


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save(minimal_checkpoint(metrics={"x": WritesAFile(marker)}), evil)
    with pytest.raises(CheckpointError, match="NOT loaded"):
        load_checkpoint(evil)
    assert not marker.exists()
    # The payload is real: a plain unpickling of the same file runs it.
    torch.load(evil, weights_only=False)
    assert marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch notes the foreign protocol first
def test_plain_pickle_payload_file_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps(WritesAFile(marker)))
    with pytest.raises(CheckpointError):
        load_checkpoint(evil)
    assert not marker.exists()


def test_missing_truncated_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    path = save_checkpoint(tmp_path / "latest.pt", minimal_checkpoint())
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(path)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="act-train"):
        load_checkpoint(tmp_path / "other.pt")
    incomplete = minimal_checkpoint()
    del incomplete["history"]
    torch.save(incomplete, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="history"):
        load_checkpoint(tmp_path / "old.pt")
    empty = tmp_path / "empty_run"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="best.pt or latest.pt"):
        open_checkpoint(empty)[0]


def test_a_checkpoint_written_before_the_faster_training_step_loads_and_acts_the_same():
    """tests/act/data/checkpoint_521b0d7.pt was written by act-train at 521b0d7 (torch's
    nn.MultiheadAttention, nn.Dropout, the for-loop AdamW; tiny config, 6 steps); the .json beside it holds
    what that version's policy did on 8 recorded observations. Today's layers load its weights and act
    the same."""
    import json
    from pathlib import Path

    import numpy as np

    from act.policy import Policy

    data = Path(__file__).parent / "data"
    expected = json.loads((data / "checkpoint_521b0d7.json").read_text())
    policy = Policy.load(data / "checkpoint_521b0d7.pt")
    policy.reset()
    actions = np.array([policy.act(np.array(obs)) for obs in expected["obs"]])
    assert np.allclose(actions, np.array(expected["actions"]), atol=1e-5)

"""act-train on correction episodes (HG-DAgger, `teleop correct`): only person-driven steps are labels,
--correction-weight weighs their samples; --policy-weight makes the policy's own steps labels too (Sirius),
less the --drop-before-takeover steps before each takeover, which also leave the normalization statistics."""

import math
import warnings

import numpy as np
import pytest
import torch

from act_helpers import TINY_MODEL
from cli_helpers import run_cli

torch.set_num_threads(1)

K = 8  # chunk size of the data tests


def person_pattern(t: int) -> np.ndarray:
    """The person drives steps 10-19 and 30 to the end: takeovers at 10 and 30, a handback at 20."""
    intervention = np.zeros(t, bool)
    intervention[10:20] = True
    intervention[30:] = True
    return intervention


def write_corrections(demos, out, patterns, *, device="keyboard", pause=None):
    """Correction episodes made from the scripted demos of `demos`, one per intervention pattern (a
    function of the episode's length). pause=(start, stop): a pause at those steps (tiny action, nothing
    moves until the next observation), which idle dropping leaves out."""
    from teleop.episode import read_episode, write_episode

    out.mkdir(parents=True, exist_ok=True)
    for path, pattern in zip(sorted(demos.glob("episode_*.hdf5")), patterns):
        episode = read_episode(path)
        episode.attrs["device"] = device
        if pause is not None:
            start, stop = pause
            episode.action[start:stop, :3] = 0.0
            episode.state[start + 1:stop + 1] = episode.state[start]
        episode.intervention = pattern(episode.num_steps)
        episode.policy_action = np.clip(episode.action + 0.1, -1, 1).astype(np.float32)
        write_episode(out / path.name, episode)
    return out


@pytest.fixture(scope="module")
def corrections(pick_place_demos, tmp_path_factory):
    """Two corrections with the person_pattern and one in which the person never took over."""
    never = lambda t: np.zeros(t, bool)  # noqa: E731
    return write_corrections(pick_place_demos, tmp_path_factory.mktemp("corrections"),
                             [person_pattern, person_pattern, never])


# ---------------------------------------------------------------------------- samples and label masks

def test_samples_only_where_a_person_drove_and_policy_rows_are_masked(pick_place_demos, corrections):
    from act.data import ChunkDataset, load_dataset

    dataset = load_dataset([pick_place_demos, corrections], drop_idle=None)
    demos = [e for e in dataset.episodes if not e.is_correction]
    fixes = [e for e in dataset.episodes if e.is_correction]
    assert len(demos) == 6 and len(fixes) == 3
    first, _, never = fixes
    t = first.num_steps
    assert first.person_steps == 10 + (t - 30) and never.person_steps == 0
    assert first.takeovers.tolist() == [10, 30]
    assert [e["correction"] for e in dataset.fingerprint()["episodes"]] == [False] * 6 + [True] * 3
    assert dataset.fingerprint()["episodes"][6]["person_steps"] == first.person_steps

    # Demos alone: every step is a sample, exactly as before corrections existed.
    plain = ChunkDataset(demos, K)
    assert len(plain) == sum(e.num_steps for e in demos) and plain.weight is None

    samples = ChunkDataset([first, never], K)
    assert len(samples) == first.person_steps  # the never-driven episode adds nothing
    assert samples.step_of.tolist() == list(range(10, 20)) + list(range(30, t))
    batch = samples.__getitems__(np.arange(len(samples)))
    np.testing.assert_array_equal(batch["state"], first.state[samples.step_of])
    at = {int(s): i for i, s in enumerate(samples.step_of)}
    # step 15: rows 15-19 the person's, 20-22 the policy's -> masked like padding
    assert batch["action_pad"][at[15]].tolist() == [False] * 5 + [True] * 3
    np.testing.assert_array_equal(batch["action"][at[15]][:5], first.action[15:20])
    assert not batch["action"][at[15]][5:].any()
    # step 19: the last person step before the handback; only its own row is a label
    assert batch["action_pad"][at[19]].tolist() == [False] + [True] * 7
    # step 30 onwards: the person drives to the end, then the padding past the end
    assert not batch["action_pad"][at[30]].any()
    assert batch["action_pad"][at[t - 1]].tolist() == [False] + [True] * 7


def test_weights_ride_in_the_batch_only_when_some_differ_from_one(pick_place_demos, corrections):
    from act.data import ChunkDataset, load_dataset

    dataset = load_dataset([pick_place_demos, corrections])
    episodes = dataset.episodes[:2] + dataset.episodes[6:7]
    assert "weight" not in ChunkDataset(episodes, K)[0]
    episodes[-1].weight = 2.5
    samples = ChunkDataset(episodes, K)
    weight = samples.__getitems__(np.arange(len(samples)))["weight"]
    n_demo = episodes[0].num_steps + episodes[1].num_steps
    assert weight.dtype == np.float32 and weight.shape == (len(samples),)
    assert (weight[:n_demo] == 1).all() and (weight[n_demo:] == 2.5).all()


def test_idle_dropping_subsets_the_intervention_alike(pick_place_demos, tmp_path):
    from act.data import load_dataset

    folder = write_corrections(pick_place_demos, tmp_path / "paused", [person_pattern], pause=(24, 28))
    full = load_dataset(folder, drop_idle=False).episodes[0]
    dropped = load_dataset(folder, drop_idle=None).episodes[0]  # a keyboard's episode: idle steps dropped
    assert dropped.num_steps < full.num_steps and 24 not in dropped.frames
    np.testing.assert_array_equal(dropped.intervention, full.intervention[dropped.frames])
    assert dropped.person_steps == full.person_steps  # the pause was the policy's (steps 20-29)
    assert dropped.takeovers.tolist() == [10, 30]  # file steps, mapped through frames
    # --drop-before-takeover counts recorded steps: 25-29 before the takeover at 30, less the dropped ones
    np.testing.assert_array_equal(dropped.frames[dropped.before_takeover(5)], [5, 6, 7, 8, 9, 28, 29])


def test_drop_before_takeover_trims_only_the_normalization_statistics(corrections, pick_place_demos):
    from act.data import ChunkDataset, load_dataset, normalization_data

    episodes = load_dataset([pick_place_demos, corrections]).episodes
    first = episodes[6]
    state, action = normalization_data(episodes)
    np.testing.assert_array_equal(state, np.concatenate([e.state for e in episodes]))
    np.testing.assert_array_equal(action, np.concatenate([e.action for e in episodes]))
    # N = 5: steps 5-9 and 25-29 (policy-driven, just before the takeovers at 10 and 30)
    assert np.flatnonzero(first.before_takeover(5)).tolist() == [5, 6, 7, 8, 9, 25, 26, 27, 28, 29]
    # N = 15: all of 0-9, and of 15-29 only the policy's 20-29 (15-19 are the person's, labels)
    assert np.flatnonzero(first.before_takeover(15)).tolist() == list(range(10)) + list(range(20, 30))
    state5, action5 = normalization_data(episodes, 5)
    assert len(state5) == len(action5) == len(state) - 2 * 10  # two corrections with the pattern
    keep = ~first.before_takeover(5)
    offset = sum(e.num_steps for e in episodes[:6])
    np.testing.assert_array_equal(state5[offset:offset + keep.sum()], first.state[keep])
    # the samples and labels do not change
    assert len(ChunkDataset(episodes, K)) == sum(e.person_steps for e in episodes)


def test_policy_steps_are_labels_with_a_policy_weight_less_those_before_a_takeover(corrections, pick_place_demos):
    """Sirius-style: --policy-weight makes the policy's own steps labels, --drop-before-takeover leaves the
    N before each takeover out of them."""
    from act.data import ChunkDataset, load_dataset

    first = load_dataset([pick_place_demos, corrections]).episodes[6]
    t = first.num_steps
    first.weight, first.policy_weight, first.drop_before = 2.0, 0.5, 5
    # policy rows 0-4 and 20-24 are labels (5-9 and 25-29 come just before the takeovers at 10 and 30)
    labels = np.flatnonzero(first.label_rows()).tolist()
    assert labels == list(range(5)) + list(range(10, 25)) + list(range(30, t))
    samples = ChunkDataset([first], K)
    assert samples.step_of.tolist() == labels
    weight = samples.__getitems__(np.arange(len(samples)))["weight"]
    assert weight.tolist() == [0.5] * 5 + [2.0] * 10 + [0.5] * 5 + [2.0] * (t - 30)
    at = {int(s): i for i, s in enumerate(samples.step_of)}
    # from step 2: rows 2-4 are labels, 5-9 (before the takeover) are not
    assert samples.__getitems__([at[2]])["action_pad"][0].tolist() == [False] * 3 + [True] * 5
    first.policy_weight = 0.0  # HG-DAgger again: only the person's rows
    assert np.flatnonzero(first.label_rows()).tolist() == list(range(10, 20)) + list(range(30, t))


def test_a_folder_without_person_steps_warns_and_no_labels_at_all_is_refused(pick_place_demos, tmp_path):
    from act.data import DataError, check_labels, load_dataset

    never = write_corrections(pick_place_demos, tmp_path / "never", [lambda t: np.zeros(t, bool)] * 2)
    with pytest.warns(UserWarning, match="no step of its 2 correction episodes was driven by a person"):
        check_labels(load_dataset([pick_place_demos, never]))
    with pytest.raises(DataError, match="^no labels: "):
        check_labels(load_dataset(never))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_labels(load_dataset(pick_place_demos))  # demos alone: nothing to say


# ---------------------------------------------------------------------------- the weighted loss

def tiny_policy():
    from act.config import ACTConfig
    from act.model import ACTPolicy

    torch.manual_seed(0)
    return ACTPolicy(ACTConfig(state_dim=5, action_dim=3, chunk_size=6, hidden_dim=16, feedforward_dim=32,
                               n_heads=2, n_encoder_layers=1, n_decoder_layers=1, n_vae_encoder_layers=1,
                               latent_dim=4))


def random_batch(b=5, k=6):
    g = torch.Generator().manual_seed(3)
    pad = torch.rand(b, k, generator=g) < 0.4
    pad[:, 0] = False
    return dict(state=torch.randn(b, 5, generator=g), action=torch.randn(b, k, 3, generator=g), action_pad=pad)


def test_weights_of_one_give_todays_loss_bit_for_bit():
    policy = tiny_policy()
    batch = random_batch()
    for train in (True, False):
        policy.train(train)
        torch.manual_seed(1)
        loss, info = policy(batch)
        torch.manual_seed(1)
        ones, ones_info = policy(dict(batch, weight=torch.ones(5)))
        assert torch.equal(loss, ones) and info == ones_info


def test_weighted_l1_is_a_weighted_mean_and_the_kl_is_not_weighted():
    policy = tiny_policy().eval()
    batch = random_batch()
    weight = torch.tensor([1.0, 3.0, 0.5, 1.0, 2.0])
    loss, info = policy(dict(batch, weight=weight))
    with torch.no_grad():
        mu, logvar = policy.encode_latent(batch["state"], batch["action"], batch["action_pad"])
        pred = policy.decode(batch["state"], mu, None)
    valid = (~batch["action_pad"]).double()  # (B, K)
    err = (pred.double() - batch["action"].double()).abs().sum(-1)  # (B, K) summed over the 3 dims
    w = weight.double()[:, None]
    l1 = (w * err * valid).sum() / (w * valid * 3).sum()
    kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).sum(-1).mean()
    assert info["l1"] == pytest.approx(l1.item(), rel=1e-5)
    assert info["kl"] == pytest.approx(kl.item(), rel=1e-6)
    assert loss.item() == pytest.approx(l1.item() + policy.config.kl_weight * kl.item(), rel=1e-5)
    unweighted = policy(batch)[1]
    assert unweighted["kl"] == info["kl"] and not math.isclose(unweighted["l1"], info["l1"], rel_tol=1e-4)
    scaled = policy(dict(batch, weight=weight * 4))[1]  # only relative weights matter
    assert scaled["l1"] == pytest.approx(info["l1"], rel=1e-6)
    with pytest.raises(ValueError, match="weight"):
        policy(dict(batch, weight=torch.ones(4)))


# ---------------------------------------------------------------------------- act-train

def test_act_train_on_demos_and_corrections(pick_place_demos, corrections, tmp_path):
    from act.checkpoint import load_checkpoint

    out = tmp_path / "run"
    result = run_cli("act.train", *TINY_MODEL, "--data", str(pick_place_demos), str(corrections), "--out", str(out),
                     "--steps", "3", "--val-every", "3", "--val-fraction", "0.2", "--correction-weight", "2",
                     "--drop-before-takeover", "5", timeout=180)
    assert result.returncode == 0, result.stderr
    episodes = load_checkpoint(out / "latest.pt")["dataset"]["episodes"]
    fixes = [e for e in episodes if e["correction"]]
    labels, steps = sum(e["person_steps"] for e in fixes), sum(e["num_steps"] for e in fixes)
    line = f"corrections: 3 episodes, {labels} of {steps} steps driven by a person are labels (weight 2.0); 6 demo episodes"
    assert line in result.stdout.splitlines()
    assert len(fixes) == 3 and fixes[2]["person_steps"] == 0
    assert all(e["person_steps"] == e["num_steps"] for e in episodes if not e["correction"])
    args = load_checkpoint(out / "latest.pt")["train_args"]
    assert args["correction_weight"] == 2.0 and args["drop_before_takeover"] == 5
    # The scripted expert drove most of the labels: its recipe (no CVAE), and act-train says why.
    scripted = sum(e["num_steps"] for e in episodes if not e["correction"])
    share = labels / (labels + scripted)
    assert (f"labels: {labels} steps driven by a person ({share:.0%}), {scripted} by the scripted expert: trained "
            f"with the scripted expert's (no CVAE, no dropout) defaults; --vae/--no-vae and --dropout set them"
            ) in result.stdout.splitlines()
    assert load_checkpoint(out / "latest.pt")["config"]["vae"] is False


def test_the_recipe_follows_who_drove_most_of_the_labels(pick_place_demos, corrections, tmp_path):
    """A few corrections on scripted demos keep the scripted expert's recipe (reach-wall-v3 at 20 demos plus one
    correction: 97.3% over three seeds with it, 81.7% with ACT's CVAE and dropout; BENCHMARKS.md); a person's
    corrections alone, or a person's majority, get a person's."""
    from act.data import load_dataset

    mixed = load_dataset([pick_place_demos, corrections])
    person = sum(e.person_steps for e in mixed.episodes if e.is_correction)
    scripted = sum(e.num_steps for e in mixed.episodes if not e.is_correction)
    assert (mixed.person_rows, mixed.scripted_rows) == (person, scripted) and 0 < person < scripted
    assert not mixed.recorded_by_person
    assert load_dataset(corrections).recorded_by_person  # only a person's steps are labels
    # The same corrections recorded with the scripted expert driving are the expert's rows.
    expert = write_corrections(pick_place_demos, tmp_path / "expert", [person_pattern] * 2, device="scripted")
    fixes = load_dataset(expert)
    assert fixes.person_rows == 0 and fixes.scripted_rows == person and not fixes.recorded_by_person
    # A person's majority: their corrections outweigh one scripted demo.
    one = tmp_path / "one"
    one.mkdir()
    first = sorted(pick_place_demos.glob("episode_*.hdf5"))[0]
    (one / first.name).symlink_to(first)
    assert load_dataset([one, corrections]).recorded_by_person


@pytest.mark.parametrize("flag, value", [("--correction-weight", "0"), ("--correction-weight", "-1"),
                                         ("--policy-weight", "-0.5"), ("--policy-weight", "nan"),
                                         ("--correction-weight", "nan"), ("--correction-weight", "inf"),
                                         ("--drop-before-takeover", "-1")])
def test_bad_flag_values_are_one_line_errors(flag, value, capsys, monkeypatch):
    from act.train import main

    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main replaces it
    assert main(["--data", "nowhere", "--out", "nothing", flag, value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {flag} {value}")


def test_no_labels_at_all_exits_2(pick_place_demos, tmp_path, capsys, monkeypatch):
    from act.train import main

    never = write_corrections(pick_place_demos, tmp_path / "never", [lambda t: np.zeros(t, bool)] * 3)
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    assert main(["--data", str(never), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: no labels: ")

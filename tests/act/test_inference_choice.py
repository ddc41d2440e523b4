"""act-train chooses each run's inference from rollouts on held-out spawns and stores it (act/inference_choice.py)."""

import json

import numpy as np
import pytest
import torch

from act_helpers import TINY_MODEL
from cli_helpers import run_cli

CHUNKS = {"temporal_ensemble": None, "query_every": 5}
ENSEMBLE = {"temporal_ensemble": -0.1, "query_every": None}


@pytest.fixture
def scored(monkeypatch):
    """Rollouts that succeed on `wins[name]` of the spawns for each inference, recording what ran."""
    import act.policy
    import act.rollout
    from act.rollout import RolloutResult

    ran = []
    wins = {}

    class Stub:
        def __init__(self, inference):
            self.inference = inference

    def rollout(policy, task, spawns, *, max_steps, **_):
        name = "chunks" if policy.inference["query_every"] else "ensemble"
        ran.append((name, [s.seed for s in spawns], max_steps))
        return [RolloutResult(seed=s.seed, spawn=[], success=i < wins[name], length=1, steps_to_success=None,
                              final_obj_to_target=0.0, total_reward=0.0) for i, s in enumerate(spawns)]

    monkeypatch.setattr(act.policy.Policy, "from_checkpoint", classmethod(lambda cls, ckpt, **kw: Stub(kw)))
    monkeypatch.setattr(act.rollout, "rollout", rollout)
    return ran, wins


def _choose(default, episodes=6):
    from act.inference_choice import choose_inference

    return choose_inference({"config": {"chunk_size": 20}}, "push-v3", np.zeros(3), np.ones(3),
                            episodes=episodes, max_steps=500, training_seeds=range(20), default=default)


def test_the_candidate_with_more_successes_is_chosen_on_shared_held_out_spawns(scored):
    from act.inference_choice import SELECTION_BASE_SEED

    ran, wins = scored
    wins.update(chunks=2, ensemble=5)
    choice = _choose(CHUNKS)
    assert choice["chosen"] == ENSEMBLE and choice["default"] == CHUNKS
    assert [(c["inference"], c["successes"]) for c in choice["candidates"]] == [(CHUNKS, 2), (ENSEMBLE, 5)]
    # Both candidates ran on the same spawns, none of them a training or an act-eval seed.
    assert ran[0][1] == ran[1][1] == list(range(SELECTION_BASE_SEED, SELECTION_BASE_SEED + 6))
    wins.update(chunks=5, ensemble=2)
    assert _choose(ENSEMBLE)["chosen"] == CHUNKS


def test_a_run_that_fails_on_held_out_spawns_is_named(scored):
    from act.inference_choice import weak_run_warning

    _, wins = scored
    wins.update(chunks=0, ensemble=1)  # 1 of 6: under a fifth with either inference
    message = weak_run_warning(_choose(CHUNKS))
    assert message.startswith("the trained policy succeeded on only 1 of 6 held-out spawns")
    assert "--seed" in message and "\n" not in message
    wins.update(chunks=2, ensemble=0)  # 2 of 6 with one of them: no warning
    assert weak_run_warning(_choose(CHUNKS)) is None


def test_a_run_short_of_ninety_percent_is_told_what_helped(scored):
    from act.inference_choice import short_run_advice

    _, wins = scored
    wins.update(chunks=16, ensemble=17)  # 17 of 20: between a fifth and 90%
    choice = _choose(CHUNKS, episodes=20)
    assert short_run_advice(choice, 20, "runs/x", 600) is None  # short of training, maybe not of data
    message = short_run_advice(choice, 20, "runs/x", 3000)
    assert message.startswith("held-out success 17/20 (85%) from 20 training episodes")
    assert "teleop correct --ckpt runs/x" in message and "\n" not in message
    assert short_run_advice(_choose(CHUNKS, episodes=10), 20, "runs/x", 3000) is None  # too few rollouts
    wins.update(chunks=18, ensemble=2)  # 90%: nothing to advise
    assert short_run_advice(_choose(CHUNKS, episodes=20), 20, "runs/x", 3000) is None
    wins.update(chunks=3, ensemble=0)  # under a fifth: the weak-run warning speaks instead
    assert short_run_advice(_choose(CHUNKS, episodes=20), 20, "runs/x", 3000) is None


def test_a_tie_keeps_the_default(scored):
    _, wins = scored
    wins.update(chunks=4, ensemble=4)
    assert _choose(CHUNKS)["chosen"] == CHUNKS
    assert _choose(ENSEMBLE)["chosen"] == ENSEMBLE


def test_act_train_stores_the_choice_and_act_eval_reports_it(pick_place_demos, tmp_path):
    run = tmp_path / "run"
    res = run_cli("act.train", "--data", str(pick_place_demos), "--out", str(run), "--steps", "4",
                  *TINY_MODEL, "--choose-inference", "2", "--val-every", "2")
    assert res.returncode == 0, res.stderr
    assert "inference: chunks of 5 0/2, ensemble k=-0.1 0/2 on held-out spawns" in res.stdout, res.stdout
    checkpoint = torch.load(run / "latest.pt", weights_only=True)
    choice = checkpoint["inference_choice"]
    assert choice["episodes"] == 2 and choice["max_steps"] == checkpoint["horizon"]
    assert checkpoint["inference"] == choice["chosen"] == CHUNKS  # nothing succeeds: the default stays
    out = tmp_path / "eval"
    res = run_cli("act.evaluate", "--ckpt", str(run), "--out", str(out), "--episodes", "2", "--max-steps", "5",
                  "--videos", "0")
    assert res.returncode == 0, res.stderr
    report = json.loads((out / "results.json").read_text())
    assert report["inference"] == CHUNKS
    assert report["inference_why"].startswith("chosen by act-train on held-out spawns: chunks of 5 0/2")
    assert "chosen by act-train" in (out / "results.md").read_text()
    res = run_cli("act.evaluate", "--ckpt", str(run), "--out", str(tmp_path / "e2"), "--episodes", "1",
                  "--max-steps", "5", "--videos", "0", "--temporal-ensemble", "-0.1")
    assert json.loads((tmp_path / "e2" / "results.json").read_text())["inference_why"] == "set on the command line"


def test_a_negative_count_is_refused(pick_place_demos, tmp_path):
    res = run_cli("act.train", "--data", str(pick_place_demos), "--out", str(tmp_path / "r"), "--steps", "2",
                  *TINY_MODEL, "--choose-inference", "-1")
    assert res.returncode == 2 and res.stderr.strip().splitlines()[-1].startswith("error: --choose-inference -1")
    assert not (tmp_path / "r").exists()

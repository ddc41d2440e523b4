import math

import pytest
import torch

from act.ensemble import TemporalEnsembler


def offline_ensemble(chunks: list[torch.Tensor], k: float) -> list[torch.Tensor]:
    """Plain reference: for each step t, weight chunk j (issued at step j) by exp(-k * i), i being
    its rank among the chunks covering t, oldest first."""
    chunk_size = chunks[0].shape[1]
    actions = []
    for t in range(len(chunks)):
        first = max(0, t - chunk_size + 1)
        total = torch.zeros_like(chunks[0][:, 0], dtype=torch.float64)
        weight_sum = 0.0
        for rank, j in enumerate(range(first, t + 1)):
            w = math.exp(-k * rank)
            total += w * chunks[j][:, t - j].double()
            weight_sum += w
        actions.append(total / weight_sum)
    return actions


@pytest.mark.parametrize("k", [0.01, 0.5, 0.0, -0.3])
def test_matches_offline_average(k):
    torch.manual_seed(0)
    chunk_size, steps = 5, 23
    chunks = [torch.randn(2, chunk_size, 3) for _ in range(steps)]  # (B, K, A) per step
    ensembler = TemporalEnsembler(chunk_size, k=k)
    online = [ensembler.update(c) for c in chunks]
    for t, (got, want) in enumerate(zip(online, offline_ensemble(chunks, k))):
        assert got.shape == (2, 3)
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6, msg=f"step {t}")


def test_oldest_prediction_weighs_most():
    ensembler = TemporalEnsembler(chunk_size=3, k=1.0)
    ensembler.update(torch.zeros(1, 3, 1))  # oldest says 0
    action = ensembler.update(torch.ones(1, 3, 1))  # newest says 1
    expected = 1.0 * math.exp(-1.0) / (1.0 + math.exp(-1.0))
    assert action.item() == pytest.approx(expected)
    assert action.item() < 0.5


def test_default_favours_the_newer_predictions():
    # The default is negative (act/ensemble.py): newer chunks weigh more, but not one chunk alone.
    ensembler = TemporalEnsembler(chunk_size=20)
    assert ensembler.k < 0
    for _ in range(19):
        ensembler.update(torch.zeros(1, 20, 1))  # older chunks say 0
    action = ensembler.update(torch.ones(1, 20, 1))  # the newest says 1
    weights = [math.exp(-ensembler.k * i) for i in range(20)]
    assert action.item() == pytest.approx(weights[-1] / sum(weights))
    assert 0.08 < action.item() < 0.2  # more than a plain mean's 1/20, far from the whole action


def test_a_stalled_state_still_reaches_the_planned_switch():
    # Where the robot stalls, every chunk is the same plan: push down 4 more steps, then lift.
    # The action run now averages those chunks' entries for now (entry j of the chunk issued j steps
    # ago), so the older chunks' "lift" must outweigh the newest chunks' "push down".
    plan = torch.tensor([-1.0] * 4 + [1.0] * 16).reshape(1, 20, 1)
    ensembler = TemporalEnsembler(chunk_size=20)
    for _ in range(20):
        action = ensembler.update(plan.clone())
    assert action.item() > 0
    newest_heavy = TemporalEnsembler(chunk_size=20, k=-0.3)
    for _ in range(20):
        stuck = newest_heavy.update(plan.clone())
    assert stuck.item() < 0  # k = -0.3, the previous default, keeps pushing down


def test_first_step_and_reset():
    ensembler = TemporalEnsembler(chunk_size=4)
    first = torch.randn(1, 4, 2)
    torch.testing.assert_close(ensembler.update(first), first[:, 0])
    ensembler.update(torch.randn(1, 4, 2))
    ensembler.reset()
    fresh = torch.randn(3, 4, 2)  # a new batch size is fine after reset
    torch.testing.assert_close(ensembler.update(fresh), fresh[:, 0])


def test_shape_errors():
    ensembler = TemporalEnsembler(chunk_size=4)
    with pytest.raises(ValueError, match="expected"):
        ensembler.update(torch.zeros(1, 5, 2))
    ensembler.update(torch.zeros(1, 4, 2))
    with pytest.raises(ValueError, match="reset"):
        ensembler.update(torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match="chunk_size"):
        TemporalEnsembler(0)

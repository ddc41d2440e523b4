import json

import numpy as np
import pytest
import torch

from act.normalize import Normalizer


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    states = rng.normal(3.0, 2.0, size=(500, 6))
    states[:, 4] = 0.0  # a column that never varies (e.g. MetaWorld's goal zeros)
    actions = rng.uniform(-1, 1, size=(500, 4))
    return states, actions


def test_statistics_and_std_floor(data):
    states, actions = data
    norm = Normalizer.from_data(states, actions, min_std=0.05)
    np.testing.assert_allclose(norm.state_mean.numpy(), states.mean(0), rtol=1e-5, atol=1e-6)
    expected_std = np.maximum(states.std(0), 0.05)
    np.testing.assert_allclose(norm.state_std.numpy(), expected_std, rtol=1e-5)
    assert norm.state_std[4].item() == pytest.approx(0.05)
    np.testing.assert_allclose(norm.action_std.numpy(), actions.std(0), rtol=1e-5)
    assert (norm.state_dim, norm.action_dim) == (6, 4)

    normalized = norm.normalize_state(states)
    varying = [0, 1, 2, 3, 5]
    np.testing.assert_allclose(normalized[:, varying].mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(normalized[:, varying].std(0), 1.0, rtol=1e-4)
    assert np.all(normalized[:, 4] == 0.0)  # constant column: finite, not blown up


def test_round_trip_numpy_and_torch(data):
    states, actions = data
    norm = Normalizer.from_data(states, actions)
    np.testing.assert_allclose(norm.unnormalize_state(norm.normalize_state(states)), states,
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(norm.unnormalize_action(norm.normalize_action(actions)), actions,
                               rtol=1e-5, atol=1e-6)
    chunk = torch.as_tensor(actions[:60], dtype=torch.float32).reshape(3, 20, 4)  # (B, K, A)
    back = norm.unnormalize_action(norm.normalize_action(chunk))
    assert isinstance(back, torch.Tensor) and back.shape == (3, 20, 4)
    torch.testing.assert_close(back, chunk, rtol=1e-5, atol=1e-6)
    # torch and numpy paths agree
    np.testing.assert_allclose(norm.normalize_action(chunk).numpy(),
                               norm.normalize_action(chunk.numpy()), rtol=1e-5, atol=1e-6)


def test_dict_round_trip_through_json(data):
    states, actions = data
    norm = Normalizer.from_data(states, actions, min_std=0.03)
    rebuilt = Normalizer.from_dict(json.loads(json.dumps(norm.to_dict())))
    assert rebuilt.min_std == 0.03
    for name in ("state_mean", "state_std", "action_mean", "action_std"):
        torch.testing.assert_close(getattr(rebuilt, name), getattr(norm, name), rtol=0, atol=0)
    x = torch.randn(5, 6)
    torch.testing.assert_close(rebuilt.normalize_state(x), norm.normalize_state(x))


def test_errors():
    with pytest.raises(ValueError, match="keys"):
        Normalizer.from_dict({"state_mean": [0.0]})
    with pytest.raises(ValueError, match="NaN"):
        Normalizer.from_data(np.array([[np.nan, 1.0]]), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="min_std"):
        Normalizer.from_data(np.zeros((3, 2)), np.zeros((3, 2)), min_std=0.0)
    norm = Normalizer.from_data(np.zeros((3, 2)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="last axis"):
        norm.normalize_state(np.zeros((4, 3)))

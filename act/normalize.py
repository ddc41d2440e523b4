"""Mean/std normalization of states and actions, computed once from the training demos.

The policy sees normalized states and predicts normalized actions; the statistics travel in the
checkpoint as a plain dict of lists (`to_dict` / `from_dict`), so evaluation undoes exactly what
training did. Every method takes a numpy array or a torch tensor and returns the same kind.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import torch

ArrayLike = TypeVar("ArrayLike", np.ndarray, torch.Tensor)

DEFAULT_MIN_STD = 1e-2


def _stats(data: np.ndarray, name: str, min_std: float) -> tuple[np.ndarray, np.ndarray]:
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (N, dim) array, got shape {data.shape}")
    if not np.isfinite(data).all():
        raise ValueError(f"{name} contains NaN or inf; clean the demos before computing statistics")
    # A column that never varies (goal zeros, an unused second object) would divide by ~0.
    return data.mean(axis=0), np.maximum(data.std(axis=0), min_std)


class Normalizer:
    """Per-dimension (x - mean) / std for states and actions; std is floored at `min_std`."""

    def __init__(self, state_mean, state_std, action_mean, action_std, *,
                 min_std: float = DEFAULT_MIN_STD):
        self.min_std = float(min_std)
        self.state_mean = torch.as_tensor(np.asarray(state_mean), dtype=torch.float32)  # (S,)
        self.state_std = torch.as_tensor(np.asarray(state_std), dtype=torch.float32)  # (S,)
        self.action_mean = torch.as_tensor(np.asarray(action_mean), dtype=torch.float32)  # (A,)
        self.action_std = torch.as_tensor(np.asarray(action_std), dtype=torch.float32)  # (A,)
        for name, mean, std in (("state", self.state_mean, self.state_std),
                                ("action", self.action_mean, self.action_std)):
            if mean.dim() != 1 or mean.shape != std.shape:
                raise ValueError(f"{name}_mean {tuple(mean.shape)} and {name}_std "
                                 f"{tuple(std.shape)} must be 1-D and the same length")
            if not (torch.isfinite(mean).all() and torch.isfinite(std).all() and (std > 0).all()):
                raise ValueError(f"{name} statistics must be finite with std > 0")

    @classmethod
    def from_data(cls, states: np.ndarray, actions: np.ndarray, *,
                  min_std: float = DEFAULT_MIN_STD) -> "Normalizer":
        """Statistics of every state (N, S) and action (M, A) in the training set."""
        if not min_std > 0:
            raise ValueError(f"min_std={min_std!r}: must be > 0")
        state_mean, state_std = _stats(states, "states", min_std)
        action_mean, action_std = _stats(actions, "actions", min_std)
        return cls(state_mean, state_std, action_mean, action_std, min_std=min_std)

    @property
    def state_dim(self) -> int:
        return self.state_mean.shape[0]

    @property
    def action_dim(self) -> int:
        return self.action_mean.shape[0]

    def normalize_state(self, state: ArrayLike) -> ArrayLike:
        """state (..., S) -> normalized (..., S)."""
        return _affine(state, self.state_mean, self.state_std, forward=True)

    def unnormalize_state(self, state: ArrayLike) -> ArrayLike:
        return _affine(state, self.state_mean, self.state_std, forward=False)

    def normalize_action(self, action: ArrayLike) -> ArrayLike:
        """action (..., A) -> normalized (..., A); the training targets."""
        return _affine(action, self.action_mean, self.action_std, forward=True)

    def unnormalize_action(self, action: ArrayLike) -> ArrayLike:
        """Normalized action (..., A), e.g. a predicted chunk (B, K, A) -> environment units."""
        return _affine(action, self.action_mean, self.action_std, forward=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists of floats: JSON-safe and loadable with torch.load(weights_only=True)."""
        return {
            "state_mean": self.state_mean.tolist(),
            "state_std": self.state_std.tolist(),
            "action_mean": self.action_mean.tolist(),
            "action_std": self.action_std.tolist(),
            "min_std": self.min_std,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Normalizer":
        expected = {"state_mean", "state_std", "action_mean", "action_std", "min_std"}
        if set(data) != expected:
            raise ValueError(f"normalizer dict has keys {sorted(data)}, expected {sorted(expected)}")
        return cls(data["state_mean"], data["state_std"], data["action_mean"], data["action_std"],
                   min_std=data["min_std"])


def _affine(x: ArrayLike, mean: torch.Tensor, std: torch.Tensor, *, forward: bool) -> ArrayLike:
    if x.shape[-1] != mean.shape[0]:
        raise ValueError(f"last axis has length {x.shape[-1]}, the statistics have {mean.shape[0]}")
    if isinstance(x, np.ndarray):
        mean_np, std_np = mean.numpy(), std.numpy()
        out = (x - mean_np) / std_np if forward else x * std_np + mean_np
        return out.astype(np.result_type(x.dtype, np.float32), copy=False)
    if not x.is_floating_point():
        x = x.float()
    mean, std = mean.to(x.device, x.dtype), std.to(x.device, x.dtype)
    return (x - mean) / std if forward else x * std + mean

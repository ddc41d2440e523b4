"""A trained ACT policy at run time: observations in environment units -> actions in [-1, 1].

Used by training rollouts and by act-eval. It owns what the checkpoint says about inputs and
outputs (which observation columns, normalization), so callers pass raw observations. Batched:
B environments stepping in lockstep share one forward pass.

Two ways to turn chunks into actions:
- temporal_ensemble=k: query every step, average the predictions every live chunk made for this
  step, weighted (ACT's Algorithm 2; act/ensemble.py);
- query_every=n: query every n steps and run the chunk's actions open-loop in between
  (n=1: "query every step, run the first action").
A checkpoint says which one its policy runs unless told otherwise (act.config.default_inference:
open-loop chunks of 5 for scripted demos, ensembling with k = -0.1 for demos recorded by a person).
"""

from __future__ import annotations

import os

import numpy as np

from act.config import DEFAULT_TEMPORAL_ENSEMBLE, checkpoint_inference
from act.data import StateSpec


class Policy:
    def __init__(self, model, normalizer, spec: StateSpec, *,
                 temporal_ensemble: float | None = DEFAULT_TEMPORAL_ENSEMBLE, query_every: int | None = None,
                 device: str = "cpu"):
        from act.ensemble import TemporalEnsembler

        if (temporal_ensemble is None) == (query_every is None):
            raise ValueError("choose exactly one of temporal_ensemble=k or query_every=n")
        chunk_size = model.config.chunk_size
        if query_every is not None and not 1 <= query_every <= chunk_size:
            raise ValueError(f"query_every={query_every}: must be in 1..chunk_size={chunk_size}")
        self.model = model.to(device).eval()
        self.config = model.config
        self.normalizer = normalizer
        self.spec = spec
        self.device = device
        self.query_every = query_every
        self.ensembler = (TemporalEnsembler(chunk_size, temporal_ensemble)
                          if temporal_ensemble is not None else None)
        self.reset()

    @classmethod
    def load(cls, path_or_run_dir: str | os.PathLike, **kwargs) -> "Policy":
        """From a checkpoint file, or a run folder (act.checkpoint.open_checkpoint picks the file)."""
        from act.checkpoint import open_checkpoint

        _, checkpoint = open_checkpoint(path_or_run_dir)
        policy = cls.from_checkpoint(checkpoint, **kwargs)
        policy.checkpoint_step = int(checkpoint["step"])
        return policy

    @classmethod
    def from_checkpoint(cls, checkpoint: dict, **kwargs) -> "Policy":
        from act.checkpoint import CheckpointError
        from act.config import ACTConfig
        from act.model import ACTPolicy
        from act.normalize import Normalizer

        try:
            model = ACTPolicy(ACTConfig.from_dict(checkpoint["config"]))
            model.load_state_dict(checkpoint["model"])
            normalizer = Normalizer.from_dict(checkpoint["normalizer"])
            spec = StateSpec.from_dict(checkpoint["state_spec"])
        except (ValueError, KeyError, RuntimeError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise CheckpointError(f"checkpoint does not rebuild a policy: {first[:200]}") from None
        if "temporal_ensemble" not in kwargs and "query_every" not in kwargs:
            kwargs.update(checkpoint_inference(checkpoint))
        return cls(model, normalizer, spec, **kwargs)

    def reset(self) -> None:
        """Call at the start of every episode (all B environments start together)."""
        if self.ensembler is not None:
            self.ensembler.reset()
        self._chunk = None  # (B, K, A) in environment units, for query_every
        self._steps = 0

    def queries_next(self) -> bool:
        """Whether the next ``act`` runs the network (and so reads its observation's images): every step
        with temporal ensembling, every ``query_every``-th step with open-loop chunks."""
        return self.ensembler is not None or self._steps % self.query_every == 0

    def act(self, obs, qpos=None, images=None, active=None) -> np.ndarray:
        """obs (B, 39) [qpos (B, J) if trained with --qpos; images (B, N, H, W, 3) uint8 if
        trained with cameras] -> actions (B, 4) float32 in [-1, 1].

        active (B,) bool, optional: rows whose episode is still running. Only those are run
        through the network (finished episodes would otherwise cost a full forward pass each
        step while a slow episode of the batch finishes); the others get zero actions."""
        obs = np.atleast_2d(np.asarray(obs, dtype=np.float64))
        if self.ensembler is not None:
            action = self.ensembler.update(self._predict_rows(obs, qpos, images, active))  # (B, A)
        else:
            if self._steps % self.query_every == 0:
                self._chunk = self._predict_rows(obs, qpos, images, active)  # (B, K, A)
            action = self._chunk[:, self._steps % self.query_every]  # (B, A)
        self._steps += 1
        return np.clip(action.cpu().numpy(), -1.0, 1.0).astype(np.float32)

    def _predict_rows(self, obs: np.ndarray, qpos, images, active) -> "torch.Tensor":  # noqa: F821
        if active is None or np.all(active):
            return self._predict(obs, qpos, images)
        import torch

        rows = np.flatnonzero(active)
        chunk = torch.zeros((obs.shape[0], self.config.chunk_size, self.config.action_dim))  # (B, K, A)
        if rows.size:
            chunk[torch.from_numpy(rows)] = self._predict(
                obs[rows], None if qpos is None else np.asarray(qpos)[rows],
                None if images is None else np.asarray(images)[rows])  # (b, K, A)
        return chunk

    def _predict(self, obs: np.ndarray, qpos, images) -> "torch.Tensor":  # noqa: F821
        import torch

        state = self.spec.state(obs, None if qpos is None else np.atleast_2d(qpos))  # (B, S)
        state = torch.from_numpy(self.normalizer.normalize_state(state)).to(self.device)  # (B, S)
        image_batch = None
        if self.config.camera_names:
            if images is None:
                raise ValueError(f"this policy sees cameras {list(self.config.camera_names)}: pass images")
            image_batch = torch.from_numpy(
                np.ascontiguousarray(np.asarray(images).transpose(0, 1, 4, 2, 3))
            ).to(self.device).float() / 255.0  # (B, N, 3, H, W)
        chunk = self.model.predict_chunk(state, image_batch)  # (B, K, A) normalized
        return self.normalizer.unnormalize_action(chunk.float().cpu())  # (B, K, A)

"""A checkpoint as a pilot for `teleop correct` (teleop.correction.Pilot), registered under the
entry-point group ``teleop.pilots``: teleop finds it there and never imports act.

One environment, batch 1, the inference the checkpoint stores (act-train's choice). Torch runs on one
thread: the live window's control loop shares the machine with the render thread, and a batch-1 query of
the default network takes about 3 ms on one core.
"""

from __future__ import annotations

import numpy as np

from act.config import checkpoint_horizon


class ACTPilot:
    def __init__(self, policy, checkpoint: dict, path):
        from act.inference_choice import describe

        self.policy = policy
        self.task = str(checkpoint["dataset"]["task"])
        self.horizon = checkpoint_horizon(checkpoint)[0]
        self.inference = {"temporal_ensemble": policy.ensembler.k if policy.ensembler else None,
                          "query_every": policy.query_every}
        self.description = f"{path} (step {int(checkpoint['step'])}, {describe(self.inference)})"

    def reset(self) -> None:
        self.policy.reset()

    def act(self, obs: np.ndarray, qpos: np.ndarray) -> np.ndarray:
        return self.policy.act(np.asarray(obs)[None], np.asarray(qpos)[None])[0]


def load(path) -> ACTPilot:
    """The pilot of a checkpoint file or run folder; CheckpointError (one line) for anything unreadable."""
    import torch

    from act.checkpoint import CheckpointError, open_checkpoint
    from act.policy import Policy

    torch.set_num_threads(1)
    file, checkpoint = open_checkpoint(path)
    policy = Policy.from_checkpoint(checkpoint)
    if policy.config.camera_names:
        raise CheckpointError(f"{file} is a camera policy ({', '.join(policy.config.camera_names)}): teleop correct "
                              f"drives state policies only so far; train one on the same demos without "
                              f"--observations vision for the corrections")
    return ACTPilot(policy, checkpoint, file)

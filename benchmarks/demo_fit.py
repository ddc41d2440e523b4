"""How closely a trained policy fits its own demonstrations (prints numbers; figures go to BENCHMARKS.md).

    .venv/bin/python benchmarks/demo_fit.py --ckpt runs/pp20 --data recordings/pp20

At every state of the demos it predicts the action chunk as act-eval would (z = 0, the checkpoint's
weights and normalization) and prints the mean L1 against the demos' actions, translation only, in
normalized units, by position in the chunk. The scripted expert's action is a function of the state, so
a network that fits its demos scores near 0 at every position; a floor at the first position, the action
about to run, says the network is short of the data rather than of the future (BENCHMARKS.md, "Dropout").
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

POSITIONS = (0, 1, 2, 4, 9, 14, 19)


def chunk_errors(policy, episodes) -> np.ndarray:
    """(K,) mean L1 of the translation (normalized) at each chunk position, over every state of the episodes."""
    import torch

    chunk_size = policy.model.config.chunk_size
    sums, counts = np.zeros(chunk_size), np.zeros(chunk_size)
    for episode in episodes:
        steps = episode.num_steps
        state = torch.from_numpy(policy.normalizer.normalize_state(episode.state))
        with torch.no_grad():
            chunks = policy.model.predict_chunk(state)  # (T, K, A), normalized
        actions = policy.normalizer.normalize_action(torch.from_numpy(episode.action))
        for j in range(min(chunk_size, steps)):  # position j of the chunk predicted at t is action t + j
            sums[j] += float((chunks[:steps - j, j, :3] - actions[j:, :3]).abs().mean(-1).sum())
            counts[j] += steps - j
    return sums / np.maximum(counts, 1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True, help="checkpoint file or run folder (its latest.pt)")
    parser.add_argument("--data", required=True, nargs="+", help="the folders of episodes it was trained on")
    args = parser.parse_args(argv)

    import torch

    from act.checkpoint import open_checkpoint
    from act.data import load_dataset
    from act.policy import Policy

    torch.set_num_threads(1)
    path, checkpoint = open_checkpoint(args.ckpt)
    policy = Policy.from_checkpoint(checkpoint)  # in eval mode: no dropout
    dataset = load_dataset(args.data, spec=policy.spec)
    errors = chunk_errors(policy, dataset.episodes)
    shown = [p for p in POSITIONS if p < len(errors)]
    print(f"{path}: dropout {checkpoint['config']['dropout']}, {len(dataset.episodes)} episodes")
    print("L1 by chunk position " + " / ".join(str(p) for p in shown) + ": "
          + " / ".join(f"{errors[p]:.3f}" for p in shown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

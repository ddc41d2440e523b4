"""How closely a trained policy fits its own demonstrations (prints numbers; figures go to BENCHMARKS.md).

    .venv/bin/python benchmarks/demo_fit.py --ckpt runs/pp20 --data recordings/pp20

At every state of the demos it predicts the action chunk as act-eval would (z = 0, the checkpoint's
weights and normalization) and prints the mean L1 against the demos' actions, translation only, in
normalized units, by position in the chunk. The scripted expert's action is a function of the state, so
a network that fits its demos scores near 0 at every position; a floor at the first position, the action
about to run, says the network is short of the data rather than of the future (BENCHMARKS.md, "Dropout").

For a checkpoint trained with the CVAE it also prints what the latent carries: the posterior's mean |mu|
and std over the demos' chunks, and the L1 with z = mu (the CVAE encoder reading the true chunk) beside
z = 0. A latent that collapsed to the prior (|mu| ~ 0, std ~ 1, the same L1) carries nothing about the
chunk, and training with it only feeds the decoder noise (BENCHMARKS.md, "The CVAE").
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


def latent_use(policy, episodes, batch_size: int = 2048) -> tuple[float, float, float, float]:
    """(mean |mu|, mean posterior std, L1 with z = mu, L1 with z = 0) over every training sample of the
    episodes (act.data.ChunkDataset, the chunks act-train feeds the CVAE): the translation's L1 in
    normalized units over the chunk's steps inside the episode."""
    import torch

    from act.data import ChunkDataset, collate

    model = policy.model
    samples = ChunkDataset(episodes, model.config.chunk_size, policy.normalizer)
    sums = {"mu": 0.0, "std": 0.0, "err_mu": 0.0, "err_0": 0.0, "labels": 0.0}
    for start in range(0, len(samples), batch_size):
        batch = collate(samples.__getitems__(np.arange(start, min(start + batch_size, len(samples)))))
        state, chunk = batch["state"], batch["action"]
        valid = (~batch["action_pad"]).unsqueeze(-1).float()  # (B, K, 1)
        with torch.no_grad():
            mu, logvar = model.encode_latent(state, chunk, batch["action_pad"])  # (B, L) each
            for name, z in (("err_mu", mu), ("err_0", torch.zeros_like(mu))):
                sums[name] += float(((model.decode(state, z) - chunk)[..., :3].abs() * valid).sum())
        sums["mu"] += float(mu.abs().mean(-1).sum())
        sums["std"] += float((0.5 * logvar).exp().mean(-1).sum())
        sums["labels"] += 3 * float(valid.sum())
    n = len(samples)
    return sums["mu"] / n, sums["std"] / n, sums["err_mu"] / sums["labels"], sums["err_0"] / sums["labels"]


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
    if policy.model.config.vae:
        mu_abs, std, err_mu, err_0 = latent_use(policy, dataset.episodes)
        print(f"CVAE latent: mean |mu| {mu_abs:.4f}, posterior std {std:.3f}; L1 over the chunk with z = mu "
              f"{err_mu:.4f}, with z = 0 {err_0:.4f}")
    else:
        print("CVAE latent: none (trained with vae=False: z = 0 in training too)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

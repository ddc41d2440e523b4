"""act-eval throughput and policy latency (prints numbers; figures go to BENCHMARKS.md).

    .venv/bin/python benchmarks/evaluation.py --ckpt runs/pp50 [--episodes 20]

1. raw env.step rate on this core (random actions, the checkpoint's task);
2. evaluation throughput (env steps/s, policy included, one process, one thread) for open-loop
   chunks (--query-every = chunk size, and act-eval's 5) and temporal ensembling (act-eval's k);
3. policy latency per query at batch 1 and at the evaluation batch size.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} (1 min) {five:.2f} (5 min), {os.cpu_count()} cores"


def raw_step_rate(task: str, steps: int = 3000) -> float:
    from teleop.env import TaskEnv
    from teleop.spawn import SpawnStream

    env = TaskEnv(task)
    stream = SpawnStream(env.spawn_low, env.spawn_high, strategy="random", base_seed=10**7)
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, 4)).astype(np.float32)
    env.reset(stream[0])
    elapsed = 0.0
    for t in range(steps):
        if env.steps >= env.max_steps:
            env.reset(stream[t])
        start = time.perf_counter()
        env.step(actions[t])
        elapsed += time.perf_counter() - start
    env.close()
    return steps / elapsed


def eval_rate(ckpt: str, episodes: int, batch_size: int, **inference) -> tuple[float, int, int]:
    from act.policy import Policy
    from act.rollout import evaluation_spawns, rollout

    policy = Policy.load(ckpt, **inference)
    task = policy_task(ckpt)
    from teleop.env import TaskEnv

    envs = [TaskEnv(task) for _ in range(batch_size)]  # made once per worker in act-eval, so not timed
    spawns = evaluation_spawns(envs[0].spawn_low, envs[0].spawn_high, episodes, base_seed=3 * 10**6)
    start = time.perf_counter()
    results = rollout(policy, task, spawns, envs=envs)
    elapsed = time.perf_counter() - start
    for env in envs:
        env.close()
    steps = sum(r.length for r in results)
    return steps / elapsed, steps, sum(r.success for r in results)


def policy_task(ckpt: str) -> str:
    from act.checkpoint import open_checkpoint

    return open_checkpoint(ckpt)[1]["dataset"]["task"]


def latency(ckpt: str, batch: int, repeats: int = 200) -> float:
    import torch

    from act.policy import Policy

    policy = Policy.load(ckpt, query_every=1, temporal_ensemble=None)
    obs = np.zeros((batch, 39))
    for _ in range(10):
        policy.act(obs)
    times = []
    with torch.inference_mode():
        for _ in range(repeats):
            start = time.perf_counter()
            policy.act(obs)
            times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1000


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", default="runs/pp50")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from act.config import DEFAULT_QUERY_EVERY, DEFAULT_TEMPORAL_ENSEMBLE
    from act.policy import Policy

    chunk = Policy.load(args.ckpt).config.chunk_size
    print(f"machine: {load()}; torch threads 1")
    raw = raw_step_rate(policy_task(args.ckpt))
    print(f"raw env.step: {raw:.0f} steps/s")
    every, k = min(DEFAULT_QUERY_EVERY, chunk), DEFAULT_TEMPORAL_ENSEMBLE  # act-train chooses between these two
    for name, kwargs in ((f"chunks, query every {chunk}", {"query_every": chunk, "temporal_ensemble": None}),
                         (f"chunks, query every {every}", {"query_every": every, "temporal_ensemble": None}),
                         (f"temporal ensemble k={k:g}", {"temporal_ensemble": k})):
        rate, steps, wins = eval_rate(args.ckpt, args.episodes, args.batch_size, **kwargs)
        print(f"eval, {name}: {rate:.0f} env steps/s = {rate / raw:.0%} of raw "
              f"({steps} steps, {wins}/{args.episodes} successes, batch {args.batch_size})")
    for batch in (1, args.batch_size):
        print(f"policy latency per query, batch {batch}: {latency(args.ckpt, batch):.2f} ms")
    print(f"machine after: {load()}")


if __name__ == "__main__":
    main()

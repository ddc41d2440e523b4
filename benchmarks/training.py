"""Training benchmarks for the default ACT config (prints numbers; figures go to BENCHMARKS.md).

    .venv/bin/python benchmarks/training.py                      # everything (about 15-20 min)
    .venv/bin/python benchmarks/training.py --skip-success       # step timing only (about 1 min)
    .venv/bin/python benchmarks/training.py --data /tmp/pp50     # reuse recorded demos

1. ms per training step and samples/s of the default config at 1 and 2 torch threads (and of the first
   defaults, FIRST_DEFAULTS, at 1 thread), with the
   machine's load average beside each figure (2 threads collapse when the cores are busy, FACTS.md);
2. the data-loading share of a step (building the batch from memory, target < 10%);
3. success on random pick-place-v3 spawns vs training steps: `act-train` on 50 scripted demos
   (kept 20 steps past success) with --eval-every, and the wall-clock minutes to each point.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} (1 min) {five:.2f} (5 min), {os.cpu_count()} cores"


def record_demos(out: Path, episodes: int) -> Path:
    subprocess.run([str(ROOT / ".venv/bin/teleop"), "record", "--device", "scripted", "--task", "pick-place-v3",
                    "--episodes", str(episodes), "--hold-steps", "20", "--out", str(out), "--quiet"], check=True)
    return out


# The defaults before the recipe measurements (BENCHMARKS.md, "ACT recipe"), timed beside the current ones.
FIRST_DEFAULTS = dict(feedforward_dim=512, n_encoder_layers=4, n_vae_encoder_layers=2)


def bench_steps(data: Path, threads_list=(1, 2), steps: int = 30, warmup: int = 5) -> None:
    import torch

    from act.config import ACTConfig
    from act.data import ChunkDataset, collate, load_dataset, step_indices
    from act.model import ACTPolicy
    from act.normalize import Normalizer

    dataset = load_dataset([data])
    episodes = dataset.episodes
    normalizer = Normalizer.from_data(np.concatenate([e.state for e in episodes]),
                                      np.concatenate([e.action for e in episodes]))
    samples = ChunkDataset(episodes, ACTConfig().chunk_size, normalizer)
    batch_size = 64
    print(f"batch {batch_size}, {len(episodes)} episodes / {len(samples)} samples")
    runs = [("default", ACTConfig().validate(), threads) for threads in threads_list]
    runs.append(("first defaults", ACTConfig(**FIRST_DEFAULTS).validate(), 1))
    for name, config, threads in runs:
        print(f"{name}: hidden {config.hidden_dim}, feed-forward {config.feedforward_dim}, encoder layers "
              f"{config.n_encoder_layers}, CVAE layers {config.n_vae_encoder_layers}, chunk {config.chunk_size}")
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        model = ACTPolicy(config)
        optimizer = model.make_optimizer()
        n_params = sum(p.numel() for p in model.parameters())
        data_s, step_s = [], []
        before = load()
        for step in range(warmup + steps):
            start = time.perf_counter()
            batch = collate(samples.__getitems__(step_indices(len(samples), batch_size, seed=0, step=step)))
            fetched = time.perf_counter()
            loss, _ = model(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            end = time.perf_counter()
            if step >= warmup:
                data_s.append(fetched - start)
                step_s.append(end - start)
        step_ms = 1000 * float(np.median(step_s))
        print(f"  {threads} thread(s): {step_ms:.0f} ms/step median (mean {1000 * np.mean(step_s):.0f}), "
              f"{batch_size / (step_ms / 1000):.0f} samples/s, data loading {100 * np.sum(data_s) / np.sum(step_s):.1f}% "
              f"of step time ({1000 * np.median(data_s):.2f} ms); {n_params / 1e6:.2f}M parameters; "
              f"before: {before}; after: {load()}")


def bench_success(data: Path, steps: int, eval_every: int, eval_episodes: int, threads: int) -> None:
    from act.checkpoint import load_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [str(ROOT / ".venv/bin/act-train"), "--data", str(data), "--out", str(out), "--steps", str(steps),
               "--eval-every", str(eval_every), "--eval-episodes", str(eval_episodes),
               "--threads", str(threads), "--no-progress", "--val-every", str(eval_every),
               "--checkpoint-every", str(eval_every)]
        print(f"success vs steps: {' '.join(cmd)}  [{load()}]", flush=True)
        start = time.perf_counter()
        times = {}
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        for line in proc.stdout:
            line = line.rstrip()
            if line.startswith("step "):
                step = int(line.split()[1].rstrip(":"))
                times[step] = time.perf_counter() - start
                print(f"  [{times[step] / 60:5.1f} min, {load()}] {line}", flush=True)
            elif line:
                print(f"  {line}", flush=True)
        if proc.wait() != 0:
            raise SystemExit(f"act-train failed with exit code {proc.returncode}")
        total = time.perf_counter() - start
        history = load_checkpoint(out / "latest.pt")["history"]
    print(f"  total {total / 60:.1f} min for {steps} steps including evaluations "
          f"({1000 * total / steps:.0f} ms/step all in)")
    print("  steps  success  val_loss  minutes")
    val = dict(zip(history["val_step"], history["val_loss"]))
    for step, rate in zip(history["eval_step"], history["success_rate"]):
        print(f"  {step:5d}  {rate * eval_episodes:3.0f}/{eval_episodes:<3d}  "
              f"{val.get(step, float('nan')):8.4f}  {times.get(step, float('nan')) / 60:6.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="recorded pick-place-v3 demos (default: record 50)")
    parser.add_argument("--steps", type=int, default=3000, help="training steps of the success run")
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the success run")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--skip-success", action="store_true")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, {load()}, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or record_demos(Path(tmp) / "pp50", 50)
        if not args.skip_timing:
            bench_steps(data)
        if not args.skip_success:
            bench_success(data, args.steps, args.eval_every, args.eval_episodes, args.threads)


if __name__ == "__main__":
    main()

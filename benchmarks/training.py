"""Training benchmarks for the default ACT config (prints numbers; figures go to BENCHMARKS.md).

    .venv/bin/python benchmarks/training.py                      # everything (about 15-20 min)
    .venv/bin/python benchmarks/training.py --skip-success       # step timing only (a few minutes)
    .venv/bin/python benchmarks/training.py --skip-success --against 521b0d7   # beside an earlier act/model.py
    .venv/bin/python benchmarks/training.py --data /tmp/pp50     # reuse recorded demos

1. ms per training step (forward, backward, optimizer; batch 64) and samples/s at 1 and 2 torch threads,
   for the default config with the CVAE and dropout 0.1 (act-train's choice for a person's demos), without
   either (its choice for scripted demos), without the CVAE but with dropout, and for LeRobot's default ACT
   sizes (hidden 512, feed-forward 3200, 4 encoder and 4 CVAE layers, chunk 100), with the machine's load
   average beside each figure (2 threads collapse when the cores are busy, FACTS.md). ``--against REV``
   loads act/model.py as it was at git revision REV and times its step beside today's in the same process,
   alternating step by step, so both see the same load;
2. the data-loading share of a step (building the batch from memory, target < 10%);
3. success on random pick-place-v3 spawns vs training steps: `act-train` on 50 scripted demos (the
   recorder's default steps kept past success: 40 since 2026-12-08, 20 before) with --eval-every, and
   the wall-clock minutes to each point.
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
                    "--episodes", str(episodes), "--out", str(out), "--quiet"], check=True)
    return out


# LeRobot's ACT defaults (lerobot/policies/act/configuration_act.py), state only.
LEROBOT_SIZES = dict(hidden_dim=512, feedforward_dim=3200, n_heads=8, n_encoder_layers=4, n_decoder_layers=1,
                     n_vae_encoder_layers=4, chunk_size=100, latent_dim=32)


def model_at(revision: str):
    """act/model.py as it was at a git revision, imported as its own module."""
    import importlib.util

    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{revision}:act/model.py"], check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / f"model_{revision}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench_steps(data: Path, threads_list=(1, 2), against: str | None = None, batch_size: int = 64) -> None:
    import torch

    import act.model
    from act.config import ACTConfig
    from act.data import ChunkDataset, collate, load_dataset, step_indices
    from act.normalize import Normalizer

    dataset = load_dataset([data])
    episodes = dataset.episodes
    normalizer = Normalizer.from_data(np.concatenate([e.state for e in episodes]),
                                      np.concatenate([e.action for e in episodes]))
    implementations = {"today": act.model}
    if against:
        implementations[against] = model_at(against)
    for name, sizes, steps in (("default with the CVAE and dropout 0.1 (act-train's default for a person's demos)",
                                {}, 30),
                               ("default without the CVAE or dropout (act-train's default for scripted demos)",
                                {"vae": False, "dropout": 0.0}, 30),
                               ("default without the CVAE, dropout 0.1 (--dropout 0.1 on scripted demos)",
                                {"vae": False}, 30),
                               ("LeRobot's default sizes", LEROBOT_SIZES, 6)):
        config = ACTConfig(**sizes).validate()
        # an act/model.py from before --no-vae would build the CVAE anyway: time today's code alone there
        compared = {label: module for label, module in implementations.items()
                    if config.vae or label == "today"}
        samples = ChunkDataset(episodes, config.chunk_size, normalizer)
        print(f"{name}: hidden {config.hidden_dim}, feed-forward {config.feedforward_dim}, encoder layers "
              f"{config.n_encoder_layers}, CVAE layers {config.n_vae_encoder_layers if config.vae else 0}, "
              f"chunk {config.chunk_size}, "
              f"batch {batch_size}, {len(episodes)} episodes / {len(samples)} samples", flush=True)
        for threads in threads_list:
            torch.set_num_threads(threads)
            runs = {}
            for label, module in compared.items():
                torch.manual_seed(0)
                model = module.ACTPolicy(config)
                runs[label] = (model, model.make_optimizer(), [], [])
            before = load()
            for step in range(2 + steps):  # 2 warm-up steps
                for label, (model, optimizer, data_s, step_s) in runs.items():  # alternating: the same load
                    start = time.perf_counter()
                    batch = collate(samples.__getitems__(step_indices(len(samples), batch_size, seed=0, step=step)))
                    fetched = time.perf_counter()
                    loss, _ = model(batch)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    end = time.perf_counter()
                    if step >= 2:
                        data_s.append(fetched - start)
                        step_s.append(end - start)
            medians = {label: 1000 * float(np.median(run[3])) for label, run in runs.items()}
            for label, (model, _, data_s, step_s) in runs.items():
                n_params = sum(p.numel() for p in model.parameters())
                ratio = f", {medians[against] / medians[label]:.2f}x faster than {against}" \
                    if against in medians and label != against else ""
                print(f"  {threads} thread(s), {label}: {medians[label]:.1f} ms/step median (mean "
                      f"{1000 * np.mean(step_s):.1f}), {batch_size / (medians[label] / 1000):.0f} samples/s{ratio}; "
                      f"data loading {100 * np.sum(data_s) / np.sum(step_s):.1f}% of the step; "
                      f"{n_params / 1e6:.2f}M parameters", flush=True)
            print(f"    load before: {before}; after: {load()}", flush=True)


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
    parser.add_argument("--against", metavar="REV", help="also time act/model.py as it was at this git revision")
    parser.add_argument("--threads-list", type=int, nargs="+", default=[1, 2], help="torch threads to time")
    parser.add_argument("--skip-success", action="store_true")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, {load()}, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or record_demos(Path(tmp) / "pp50", 50)
        if not args.skip_timing:
            bench_steps(data, args.threads_list, args.against)
        if not args.skip_success:
            bench_success(data, args.steps, args.eval_every, args.eval_episodes, args.threads)


if __name__ == "__main__":
    main()

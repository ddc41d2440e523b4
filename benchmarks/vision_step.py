"""One act-train step with camera images on a CPU, and where its time goes.

    .venv/bin/python benchmarks/vision_step.py --data recordings/pp50-images [--cameras corner2,gripperPOV]
        [--batch 64] [--threads 1] [--steps 10] [--backbones small,resnet18]

For each backbone the default ACT network (act/config.py) with ``--observations vision`` takes ``--steps``
gradient steps on batches of the recorded episodes (images decoded once into memory, as act-train does),
after two warm-up steps, with the phases timed one by one:

- gather: the batch's samples from memory (act.data.ChunkDataset, uint8 -> float in [0, 1]),
- shift: the random-shift augmentation (``--image-shift 4``),
- forward: the CVAE encoder, the image backbone on every camera, the transformer, the loss,
- backward, optimizer (AdamW) and the weight average (--ema).

Beside it, forward and backward of the backbone alone on the same images, so the share of the
backbone in the step is read off directly. The machine's load average is printed with the times:
on a loaded machine they are upper bounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_NUM_THREADS", "1")

PHASES = ("gather", "shift", "forward", "backward", "optimizer", "average")


def time_steps(data: Path, cameras: tuple[str, ...], backbone: str, *, batch: int,
               steps: int) -> dict[str, list[float]]:
    """Milliseconds per phase of ``steps`` gradient steps (after 2 warm-up steps) for one backbone."""
    import numpy as np
    import torch

    from act.config import ACTConfig
    from act.data import ChunkDataset, StateSpec, collate, load_dataset, step_indices
    from act.model import ACTPolicy
    from act.normalize import Normalizer
    from act.train_loop import random_shift
    from act.weight_average import WeightAverage

    dataset = load_dataset(data, spec=StateSpec.vision(), cameras=cameras)
    episodes = dataset.episodes
    normalizer = Normalizer.from_data(np.concatenate([e.state for e in episodes]),
                                      np.concatenate([e.action for e in episodes]))
    config = ACTConfig(state_dim=episodes[0].state.shape[1], action_dim=episodes[0].action.shape[1],
                       camera_names=cameras, image_size=dataset.image_size, backbone=backbone,
                       lr_backbone=ACTConfig.lr).validate()
    samples = ChunkDataset(episodes, config.chunk_size, normalizer, cameras=cameras, image_memory_gb=4.0)
    torch.manual_seed(0)
    model = ACTPolicy(config).train()  # its backbone is channels-last (act/model.py ImageEncoder)
    optimizer = model.make_optimizer()
    average = WeightAverage(model, 0.995)
    times: dict[str, list[float]] = {p: [] for p in PHASES}
    for step in range(steps + 2):
        marks = [time.perf_counter()]
        b = collate(samples.__getitems__(step_indices(len(samples), batch, seed=0, step=step)))
        marks.append(time.perf_counter())
        b["images"] = random_shift(b["images"], 4)
        marks.append(time.perf_counter())
        loss, _ = model(b)
        marks.append(time.perf_counter())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        marks.append(time.perf_counter())
        optimizer.step()
        marks.append(time.perf_counter())
        average.update(step)
        marks.append(time.perf_counter())
        if step >= 2:
            for phase, start, stop in zip(PHASES, marks, marks[1:]):
                times[phase].append((stop - start) * 1e3)

    # The backbone alone on the last batch's images: its share of forward + backward.
    images = b["images"].flatten(0, 1)
    backbone_ms = []
    for i in range(steps + 1):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        model.images.backbone(images).sum().backward()
        if i:
            backbone_ms.append((time.perf_counter() - start) * 1e3)
    times["backbone alone (fwd+bwd)"] = backbone_ms
    return times


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="episodes recorded or rendered with images")
    parser.add_argument("--cameras", default="corner2,gripperPOV")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--backbones", default="small,resnet18")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    cameras = tuple(c for c in args.cameras.split(",") if c)
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, cameras {','.join(cameras)}, "
          f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    for backbone in args.backbones.split(","):
        times = time_steps(args.data, cameras, backbone, batch=args.batch, steps=args.steps)
        total = [sum(parts) for parts in zip(*(times[p] for p in PHASES))]
        step = statistics.median(total)
        print(f"{backbone}: step median {step:.1f} ms (min {min(total):.1f}, {args.steps} steps; "
              f"load average now {os.getloadavg()[0]:.2f})")
        for phase, values in times.items():
            median = statistics.median(values)
            share = f"{100 * median / step:5.1f}%" if phase in PHASES else "      "
            print(f"  {phase:26s} {median:8.1f} ms  {share}")


if __name__ == "__main__":
    main()

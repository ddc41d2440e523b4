"""Image backbones on a CPU: weights and the time of one forward + backward pass.

    .venv/bin/python benchmarks/backbone.py [--batch 64] [--size 96] [--threads 1] [--repeats 5]

For each backbone of act/backbone.py (resnet18: ResNet-18 up to layer4, frozen BatchNorm; small:
four stride-2 convolutions with GroupNorm) prints its trainable weights, its feature map for a
size x size image, and the median / min milliseconds of forward + backward (sum of the features
as the loss, gradients for the weights only) on a batch of ``--batch`` images after one warm-up pass,
beside the machine's load average: on a loaded machine the times are upper bounds.
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


def time_backbone(module, images, repeats: int) -> list[float]:
    """Milliseconds of forward + backward, one per repeat, after one warm-up pass."""
    times = []
    for i in range(repeats + 1):
        module.zero_grad(set_to_none=True)
        start = time.perf_counter()
        module(images).sum().backward()
        if i:
            times.append((time.perf_counter() - start) * 1e3)
    return times


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=96, help="image height and width")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backbones", default="small,resnet18")
    args = parser.parse_args(argv)

    import torch

    from act.backbone import build_backbone

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images = torch.rand(args.batch, 3, args.size, args.size)
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch} of "
          f"{args.size}x{args.size}, {os.cpu_count()} CPUs, load average before "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name in args.backbones.split(","):
        module = build_backbone(name).train()
        weights = sum(p.numel() for p in module.parameters() if p.requires_grad)
        with torch.no_grad():
            shape = tuple(module(images[:1]).shape[1:])
        times = time_backbone(module, images, args.repeats)
        print(f"{name:9s} {weights / 1e6:6.2f}M weights  features {shape}  forward+backward "
              f"median {statistics.median(times):7.1f} ms  min {min(times):7.1f} ms  "
              f"({args.repeats} runs; load average now {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()

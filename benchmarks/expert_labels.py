"""Copies of recorded scripted demos whose /action is the exact expert's action at each recorded state.

An experiment of BENCHMARKS.md "Demos with noise": demos recorded with `teleop record --expert-noise S`
keep the executed (noisy) action as the label; this writes copies labelled as DART labels them (the
expert's intended action at the noisy states), so training on the copies separates what the noisy states
do from what the noisy labels do. The copies do not replay exactly (their actions are not the ones that
were executed): they are for `act-train` only.

    python benchmarks/expert_labels.py --src benchmarks/results/cache/demos/push-v3_scripted_stratified_20_noise0.15 \
        --out /tmp/push_clean
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devices.scripted import ScriptedExpert  # noqa: E402
from teleop.episode import episode_files, read_attrs  # noqa: E402


def relabel(src: Path, out: Path) -> float:
    """Copy ``src`` to ``out`` with expert labels; returns the largest |expert - recorded| entry."""
    files = episode_files(src)
    if not files:
        raise SystemExit(f"error: no episode files in {src}")
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(src, out)
    expert = ScriptedExpert(str(read_attrs(files[0])["task"]))
    expert.connect()
    largest = 0.0
    for path in episode_files(out):
        with h5py.File(path, "r+") as f:
            labels = []
            for state in f["observations/state"][()]:
                expert.observe(state)
                labels.append(expert.expert_action())
            labels = np.asarray(labels, dtype=f["action"].dtype)
            largest = max(largest, float(np.abs(labels - f["action"][()]).max()))
            f["action"][...] = labels
    return largest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", required=True, help="folder of scripted episodes")
    parser.add_argument("--out", required=True, help="where the relabelled copies go (replaced)")
    args = parser.parse_args(argv)
    largest = relabel(Path(args.src), Path(args.out))
    print(f"{args.out}: labels are the expert's actions; largest change {largest:.3f} (0 for exact demos)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

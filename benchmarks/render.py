"""`teleop render` throughput (prints numbers; figures go to BENCHMARKS.md).

    .venv/bin/python benchmarks/render.py [--episodes 50] [--jobs 2] [--cameras corner2,gripperPOV] [--size 96]

Records N scripted pick-place-v3 episodes without images (state only, as a person's recording is),
then times `teleop render` on them end to end, as a user runs it: a fresh process, imports, worker start,
rendering, compressing and rewriting every file. `--jobs 1,2` times each setting on a fresh copy.
Target: 50 episodes, 2 cameras at 96x96, in at most 30 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MUJOCO_GL", "egl")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def machine() -> str:
    load = os.getloadavg()
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {load[0]:.2f}"


def record(out: Path, episodes: int) -> None:
    from devices.scripted import ScriptedExpert
    from teleop.collect import record_headless

    record_headless(ScriptedExpert("pick-place-v3"), task="pick-place-v3", episodes=episodes, out=out, seed=0,
                    progress=False)


def _children_cpu() -> float:
    """CPU seconds of finished child processes and theirs (the command's workers included)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--jobs", default=None, help="comma-separated --jobs settings (default: teleop render's)")
    parser.add_argument("--cameras", default="corner2,gripperPOV")
    parser.add_argument("--size", type=int, default=96)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "states"
        started = time.perf_counter()
        record(source, args.episodes)
        print(f"recorded {args.episodes} pick-place-v3 episodes (state only) in {time.perf_counter() - started:.1f} s")
        for jobs in (args.jobs.split(",") if args.jobs else [None]):
            data = Path(tmp) / f"jobs{jobs}"
            shutil.copytree(source, data)
            command = [sys.executable, "-m", "teleop.cli", "render", str(data), "--cameras", args.cameras,
                       "--image-size", str(args.size), "--quiet"] + (["--jobs", jobs] if jobs else [])
            started, cpu = time.perf_counter(), _children_cpu()
            res = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
            wall, cpu = time.perf_counter() - started, _children_cpu() - cpu
            if res.returncode != 0:
                sys.exit(f"teleop render failed: {res.stderr.strip()}")
            found = re.search(r"into (\d+) episodes? \((\d+) frames in ([\d.]+) s, \d+ frames/s, (\d+) jobs?\)",
                              res.stdout)
            episodes, frames, inside, used = int(found[1]), int(found[2]), float(found[3]), int(found[4])
            print(f"render: {episodes} episodes, {frames} frames ({args.cameras} at {args.size}x{args.size}), "
                  f"{wall:.1f} s end to end ({inside:.1f} s after reading the files), {frames / wall:.0f} frames/s, "
                  f"jobs {used}; {cpu:.1f} CPU s in all processes ({cpu / frames * 1000:.2f} ms/frame); "
                  f"load now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

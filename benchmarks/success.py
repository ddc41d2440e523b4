"""The headline table: ACT success on unseen spawns vs number of demonstrations, per task.

    .venv/bin/python benchmarks/success.py                                   # the full grid (many hours)
    .venv/bin/python benchmarks/success.py --tasks all --demos 20 --jobs 2   # every MetaWorld v3 task
    .venv/bin/python benchmarks/success.py --tasks pick-place-v3 --demos 10 20 --jobs 2
    .venv/bin/python benchmarks/success.py --tasks pick-place-v3 --demos 50 --spawn fixed   # the single-spawn failure
    .venv/bin/python benchmarks/success.py --device humanlike --tasks pick-place-v3 --demos 50
    .venv/bin/python benchmarks/success.py --device operator --tasks pick-place-v3 --demos 50   # the simulated person
    .venv/bin/python benchmarks/success.py --observations vision --tasks push-v3 --demos 50 --max-minutes 25 --jobs 2
    .venv/bin/python benchmarks/success.py --table-only                      # table + PNG from the results file
    .venv/bin/python benchmarks/success.py --reevaluate old.jsonl --results new.jsonl --jobs 2   # same runs, new act-eval

One cell = (task, demos, device, spawn):
1. record ``demos`` episodes with ``teleop record`` (seed 0, ``--hold-steps`` kept past success: 40 by default, stratified spawns,
   more of them near the faces of the spawn box with ``--spawn chebyshev``, or one spawn with ``--spawn
   fixed``) into a cache folder (reused by later runs); ``--device operator``
   records them instead with the simulated person at the real keyboard window (benchmarks/operators.py,
   at the window's defaults: speed 0.5, 2000-step limit, 0.5 s kept past success);
2. ``python -m act.train --threads 1 --no-progress`` with the default ACT config, ``--steps`` and
   ``--max-minutes`` from the flags (``--allow-single-spawn`` for fixed spawns), timed;
3. ``python -m act.evaluate --episodes 100 --videos 0`` on unseen random spawns;
4. one JSON line appended to ``--results``: success with its Wilson 95% interval, steps reached, train
   minutes, the split of the evaluation spawns inside/outside the training spawns' hull, and the machine
   load beside the timing.

``--observations vision`` records the demos with camera images (``--cameras``, ``--image-size``) and trains
``act-train --observations vision`` (images, the robot's own state and the goal, never the object's pose);
its rows go to ``success_vision.jsonl`` by default. ``--train-args "..."`` passes further act-train flags to
every cell (kept in each row; write it with '=': ``--train-args="--image-shift 4"``).

``--reevaluate OLD`` trains nothing: it evaluates the cached runs of OLD's rows again with act-eval's
current defaults, or the inference given by ``--query-every`` / ``--temporal-ensemble``, and writes rows
that keep OLD's training fields. With ``--more-spawns N`` it evaluates them instead on N further unseen
spawns (the seeds right after the row's) and writes rows pooled over both draws (``draws`` keeps each);
``--below RATE`` takes only the rows that scored under RATE:

    .venv/bin/python benchmarks/success.py --tasks all --demos 20 --reevaluate success.jsonl --more-spawns 400 \
        --below 1 --results success_500.jsonl --jobs 2   # every cell under 100/100, on 500 spawns

Beside the cells, the scripted expert itself runs on the same unseen spawns act-eval uses (seeds
1,000,000+, 500 steps, stopping at success) once per task, into ``--expert-results`` (expert.jsonl): the
tables get an ``expert`` column and, per demo count, ACT's success as a share of the expert's; with more
than the seven benchmark tasks a second PNG (``*_suite.png``) shows expert and ACT per task.

Cells already in the results file are skipped, so an interrupted run continues where it stopped.
``--jobs N`` runs N cells side by side, each process single-threaded (on these 2-core machines two
single-thread jobs give more throughput than one 2-thread job, FACTS.md). At the end (or with
``--table-only``) a markdown table per (device, spawn) is printed and written next to the results file
(success.md), with a PNG of success vs demos per task (success.png).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from act.train_config import TrainConfig
from teleop.env import HOLD_STEPS as RECORD_HOLD_STEPS
from teleop.spawn import DEFAULT_STRATEGY

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TASKS = ("reach-v3", "push-v3", "pick-place-v3", "drawer-open-v3", "door-open-v3",
                 "button-press-topdown-v3", "peg-insert-side-v3")
DEFAULT_DEMOS = (10, 20, 50, 100)
RESULTS_DIR = ROOT / "benchmarks" / "results"


@dataclass(frozen=True)
class Cell:
    task: str
    demos: int
    device: str
    spawn: str
    seed: int = 0  # act-train --seed: the cells of one task and demo count share their demos

    @property
    def key(self) -> tuple:
        return (self.task, self.demos, self.device, self.spawn, self.seed)

    @property
    def slug(self) -> str:
        """Names the cell's demos (every training seed's); its run adds ``_seed<n>`` past seed 0."""
        return f"{self.task}_{self.device}_{self.spawn}_{self.demos}"

    def __str__(self) -> str:
        return f"{self.task} x{self.demos} {self.device}/{self.spawn}" + (f" seed {self.seed}" if self.seed else "")


def load_text() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min), {os.cpu_count()} cores"


def load_values() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def read_results(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            print(f"warning: {path}:{number} is not JSON (a run killed mid-write?); ignored", file=sys.stderr)
    return rows


def row_key(row: dict) -> tuple:
    return (row["task"], int(row["demos"]), row["device"], row["spawn"], int(row.get("seed", 0)))


def _run(command: list[str], log: Path) -> float:
    """Run ``command`` with its output in ``log``; return the wall minutes. Raises on failure."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    started = time.perf_counter()
    with open(log, "a") as handle:
        handle.write(f"$ {' '.join(command)}\n")
        handle.flush()
        result = subprocess.run(command, check=False, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    minutes = (time.perf_counter() - started) / 60
    if result.returncode != 0:
        raise RuntimeError(f"{command[2] if command[1] == '-m' else command[0]} failed (exit {result.returncode}); "
                           f"see {log}")
    return minutes


VISION = {"cameras": "", "image_size": 96}  # --observations vision: what the demos record and the policy sees
EXPERT_NOISE = [0.0]  # --expert-noise: teleop record --expert-noise of the scripted demos
HOLD_STEPS = [RECORD_HOLD_STEPS]  # --hold-steps: teleop record --hold-steps of the recorded demos (steps kept after the first success)


def data_suffix() -> str:
    """What tells a vision cell's (or a noisy expert's) cached demos and run apart from the plain state cell of
    the same slug."""
    noise = f"_noise{EXPERT_NOISE[0]:g}" if EXPERT_NOISE[0] else ""
    # Demos cached before --hold-steps existed held 20 steps and carry no suffix.
    hold = f"_hold{HOLD_STEPS[0]}" if HOLD_STEPS[0] != 20 else ""
    return (f"_img{VISION['image_size']}_{VISION['cameras'].replace(',', '+')}" if VISION["cameras"] else "") + noise + hold


DEMO_LOCKS: dict[Path, threading.Lock] = defaultdict(threading.Lock)  # two seeds of a cell share its demos


def record_demos(cell: Cell, cache: Path, log: Path) -> tuple[Path, float]:
    """The cell's demonstrations, recorded once into ``cache`` (complete folders only)."""
    final = cache / "demos" / (cell.slug + data_suffix())
    with DEMO_LOCKS[final]:
        return _record_demos(cell, final, log)


def _record_demos(cell: Cell, final: Path, log: Path) -> tuple[Path, float]:
    if final.exists():
        return final, 0.0
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    if cell.device == "operator":
        if VISION["cameras"]:
            raise ValueError("the simulated operator records no images: render them with teleop render")
        if cell.spawn != DEFAULT_STRATEGY:
            raise ValueError(f"the simulated operator records the window's default spawns ({DEFAULT_STRATEGY}) only")
        command = [sys.executable, str(ROOT / "benchmarks" / "operators.py"), "--devices", "keyboard",
                   "--tasks", cell.task, "--demos", str(cell.demos), "--seed", "0", "--keep", str(partial),
                   "--minutes-per-window", "240"]
    else:
        command = [sys.executable, "-m", "teleop.cli", "record", "--device", cell.device, "--task", cell.task,
                   "--episodes", str(cell.demos), "--seed", "0", "--spawn", cell.spawn, "--hold-steps", str(HOLD_STEPS[0]),
                   "--out", str(partial), "--quiet"]
        if EXPERT_NOISE[0]:
            command += ["--expert-noise", str(EXPERT_NOISE[0])]
    if VISION["cameras"]:
        command += ["--cameras", VISION["cameras"], "--image-size", str(VISION["image_size"])]
    minutes = _run(command, log)
    partial.rename(final)
    return final, minutes


def expert_success(task: str, episodes: int, max_steps: int = 500) -> dict:
    """The scripted expert on act-eval's default unseen spawns (seeds EVAL_BASE_SEED + i): one results row."""
    from act.rollout import EVAL_BASE_SEED, evaluation_spawns
    from act.metrics import wilson_interval
    from devices.scripted import ScriptedExpert
    from teleop.env import TaskEnv

    started = time.perf_counter()
    env = TaskEnv(task, max_steps=max_steps)
    expert = ScriptedExpert(task)
    expert.connect()
    successes, steps_to_success = 0, []
    for spawn in evaluation_spawns(env.spawn_low, env.spawn_high, episodes, base_seed=EVAL_BASE_SEED):
        obs = env.reset(spawn)
        for step in range(1, max_steps + 1):
            expert.observe(obs)
            obs, _, success, _, _ = env.step(expert.expert_action())
            if success:
                successes += 1
                steps_to_success.append(step)
                break
    env.close()
    low, high = wilson_interval(successes, episodes)
    return {"task": task, "episodes": episodes, "successes": successes, "success_rate": successes / episodes,
            "success_ci95": [low, high], "base_seed": EVAL_BASE_SEED, "max_steps": max_steps,
            "mean_steps_to_success": round(sum(steps_to_success) / len(steps_to_success), 2) if steps_to_success else None,
            "minutes": round((time.perf_counter() - started) / 60, 3), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def run_experts(tasks: list[str], episodes: int, path: Path, jobs: int) -> None:
    """expert_success for every task not yet in ``path`` (``jobs`` processes), a row appended per task."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    done = {(r["task"], int(r["episodes"])) for r in read_results(path)}
    todo = [t for t in tasks if (t, episodes) not in done]
    if not todo:
        return
    print(f"scripted expert on {episodes} unseen spawns: {len(todo)} task(s), {jobs} job(s)", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(expert_success, task, episodes): task for task in todo}
        for number, future in enumerate(as_completed(futures), 1):
            row = future.result()
            with open(path, "a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(f"  [{number}/{len(todo)}] expert {row['task']}: {row['successes']}/{row['episodes']} "
                  f"in {row['minutes']:.1f} min", flush=True)


def expert_rates(path: Path) -> dict[str, dict]:
    """task -> the newest expert row in ``path``."""
    return {row["task"]: row for row in read_results(path)}


# What besides the model config decides the result: saved with every row.
RECIPE_TRAIN_ARGS = ("batch_size", "val_fraction", "lr_schedule", "warmup_steps", "state_noise", "relative",
                     "state_slices", "qpos", "ema",
                     "eval_temporal_ensemble")
STAGES: dict[Cell, str] = {}  # what each running cell is doing, for the heartbeat lines
STARTED: dict[Cell, float] = {}  # perf_counter when each cell began
DURATIONS: list[float] = []  # minutes of each cell finished in this run


def run_cell(cell: Cell, args) -> dict:
    """Record, train and evaluate one cell; returns its results line."""
    STAGES[cell] = "recording"
    cache = Path(args.cache)
    extra = "".join(c if c.isalnum() or c in ".-" else "_" for c in args.train_args.strip())
    work = cache / "runs" / (cell.slug + data_suffix() + (f"_{extra}" if extra else "")
                             + (f"_seed{cell.seed}" if cell.seed else ""))
    shutil.rmtree(work, ignore_errors=True)  # a half-trained run would make the train minutes meaningless
    work.mkdir(parents=True)
    log = work / "log.txt"
    data, record_minutes = record_demos(cell, cache, log)

    train = [sys.executable, "-m", "act.train", "--data", str(data), "--out", str(work / "run"),
             "--steps", str(args.steps), "--max-minutes", str(args.max_minutes), "--threads", "1",
             "--no-progress", "--seed", str(cell.seed)]
    if cell.spawn == "fixed":
        train.append("--allow-single-spawn")
    if VISION["cameras"]:
        train += ["--observations", "vision", "--cameras", VISION["cameras"]]
    train += args.train_args.split()
    load_before = load_values()
    STAGES[cell] = f"training since {time.strftime('%H:%M')}"
    train_minutes = _run(train, log)
    load_train = load_values()

    from act.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(work / "run" / "latest.pt")
    steps = int(checkpoint["step"])
    recipe = {**{k: v for k, v in checkpoint["config"].items() if k not in ("state_dim", "action_dim")},
              **{k: checkpoint["train_args"].get(k) for k in RECIPE_TRAIN_ARGS}}

    # act-train's choice of inference on held-out spawns (act/inference_choice.py) is part of train_minutes.
    choice = checkpoint.get("inference_choice")
    STAGES[cell] = f"evaluating since {time.strftime('%H:%M')} ({steps} steps trained)"
    return {
        "task": cell.task, "demos": cell.demos, "device": cell.device, "spawn": cell.spawn, "seed": cell.seed,
        "expert_noise": EXPERT_NOISE[0], "hold_steps": HOLD_STEPS[0],
        "steps_requested": args.steps, "max_minutes": args.max_minutes, "steps": steps,
        "record_minutes": round(record_minutes, 3), "train_minutes": round(train_minutes, 3),
        "load_before_train": load_before, "load_after_train": load_train,
        "jobs": args.jobs, "threads": 1, "host": socket.gethostname(), "cores": os.cpu_count(),
        "run": str(work), "recipe": recipe, "inference_choice": choice,
        "observations": checkpoint["train_args"].get("observations", "state"),
        "cameras": list(checkpoint["config"].get("camera_names", [])),
        "image_size": checkpoint["config"].get("image_size") if VISION["cameras"] else None,
        "backbone": checkpoint["config"].get("backbone") if VISION["cameras"] else None,
        "train_args": args.train_args,
        "choose_minutes": None if choice is None else round(choice["seconds"] / 60, 3),
        **evaluate_run(work, args, log),
    }


def evaluate_run(work: Path, args, log: Path, seed: int | None = None, episodes: int | None = None) -> dict:
    """``act-eval`` of the run in ``work`` on ``--episodes`` unseen spawns (or ``episodes`` from seed
    ``seed``, into ``eval_<seed>``), with the checkpoint's inference unless --query-every /
    --temporal-ensemble; returns the results-row fields it decides."""
    out = work / ("eval" if seed is None else f"eval_{seed}")
    evaluate = [sys.executable, "-m", "act.evaluate", "--ckpt", str(work / "run"), "--episodes",
                str(episodes or args.episodes), "--videos", "0", "--workers", "1", "--out", str(out)]
    if seed is not None:
        evaluate += ["--seed", str(seed)]
    if args.query_every is not None:
        evaluate += ["--query-every", str(args.query_every)]
    if args.temporal_ensemble is not None:
        evaluate += ["--temporal-ensemble", str(args.temporal_ensemble)]
    eval_minutes = _run(evaluate, log)
    report = json.loads((out / "results.json").read_text())
    summary, coverage = report["summary"], report["coverage"]

    def split(block: dict) -> dict:
        return {k: block.get(k) for k in ("episodes", "successes", "success_rate", "success_ci95")}

    return {
        "eval_minutes": round(eval_minutes, 3), "eval_seed": report["seed"], "inference": report["inference"],
        "checkpoint_step": report["checkpoint_step"],
        "successes": summary["successes"], "episodes": summary["episodes"],
        "success_rate": summary["success_rate"], "success_ci95": summary["success_ci95"],
        "mean_steps_to_success": summary.get("mean_steps_to_success"),
        "coverage": {"train_spawns": coverage.get("train_spawns"), "inside": split(coverage["inside"]),
                     "outside": split(coverage["outside"])},
        "load_after_eval": load_values(), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


SOURCE_ROWS: dict[tuple, dict] = {}  # --reevaluate: the row each cell's trained run came from


def reevaluate_cell(cell: Cell, args) -> dict:
    """Evaluate a cell's already trained run again (act-eval's current defaults) and keep everything the
    training decided (steps, minutes, load, recipe) from its source row."""
    STAGES[cell] = f"re-evaluating since {time.strftime('%H:%M')}"
    source = SOURCE_ROWS[cell.key]
    work = Path(source["run"])
    return {**source, **evaluate_run(work, args, work / "log.txt"), "jobs": args.jobs,
            "reevaluated_from": args.reevaluate}


def more_spawns_cell(cell: Cell, args) -> dict:
    """Evaluate a cell's trained run on ``--more-spawns`` further unseen spawns, the seeds right after the
    ones its row was measured on, and write the row pooled over both draws (``draws`` keeps each): one draw
    of 100 spawns moves a cell by up to ten points (BENCHMARKS.md, "How much of a cell is the draw")."""
    STAGES[cell] = f"evaluating {args.more_spawns} more spawns since {time.strftime('%H:%M')}"
    from act.metrics import wilson_interval
    from act.rollout import EVAL_BASE_SEED

    source = SOURCE_ROWS[cell.key]
    work = Path(source["run"])
    draws = source.get("draws") or [{"seed": source.get("eval_seed", EVAL_BASE_SEED),
                                     "episodes": source["episodes"], "successes": source["successes"],
                                     "inference": source.get("inference")}]
    seed = max(d["seed"] + d["episodes"] for d in draws)
    more = evaluate_run(work, args, work / "log.txt", seed=seed, episodes=args.more_spawns)
    if draws[0].get("inference") and more["inference"] != draws[0]["inference"]:
        raise RuntimeError(f"{cell}: the run now evaluates with {more['inference']}, its row with "
                           f"{draws[0]['inference']}; pooling them would mix two policies")
    draws = draws + [{"seed": seed, "episodes": more["episodes"], "successes": more["successes"],
                      "inference": more["inference"]}]
    successes, episodes = sum(d["successes"] for d in draws), sum(d["episodes"] for d in draws)

    def pooled(earlier: dict, later: dict) -> dict:  # a coverage split (inside or outside the hull) of both draws
        hits, count = earlier["successes"] + later["successes"], earlier["episodes"] + later["episodes"]
        return {"episodes": count, "successes": hits, "success_rate": hits / count if count else None,
                "success_ci95": list(wilson_interval(hits, count)) if count else None}

    coverage = {**source["coverage"], **{side: pooled(source["coverage"][side], more["coverage"][side])
                                         for side in ("inside", "outside")}}
    return {**source, "draws": draws, "successes": successes, "episodes": episodes, "coverage": coverage,
            "success_rate": successes / episodes, "success_ci95": list(wilson_interval(successes, episodes)),
            "eval_minutes": source.get("eval_minutes", 0) + more["eval_minutes"], "jobs": args.jobs,
            "more_spawns_from": args.reevaluate, "finished": more["finished"]}


def _tracked(work, cell: Cell, args) -> dict:
    """``work(cell, args)`` with the bookkeeping the heartbeat and the ETA read (STARTED, STAGES)."""
    STARTED[cell] = time.perf_counter()
    try:
        return work(cell, args)
    finally:
        STAGES.pop(cell, None)


def run_grid(cells: list[Cell], args, results: Path, work=None) -> None:
    """Run every cell not yet in ``results`` with ``work(cell, args)`` (default: record, train and
    evaluate it), ``--jobs`` at a time, appending one row per finished cell."""
    work = work or run_cell
    done = {row_key(row) for row in read_results(results)}
    todo = [c for c in cells if c.key not in done]
    skipped = len(cells) - len(todo)
    print(f"{len(cells)} cells, {skipped} already in {results}, {len(todo)} to run with {args.jobs} job(s); "
          f"{load_text()}", flush=True)
    if not todo:
        return
    results.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    finished = failed = 0
    JOBS[0] = args.jobs
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(_tracked, work, cell, args): cell for cell in todo}
        pending = set(futures)
        while pending:
            done_now, pending = wait(pending, timeout=args.heartbeat * 60 or None, return_when=FIRST_COMPLETED)
            if not done_now:
                running = "; ".join(f"{c}: {stage}" for c, stage in list(STAGES.items())) or "starting"
                print(f"[{skipped + finished}/{len(cells)} done, {(time.perf_counter() - started) / 60:.0f} min] "
                      f"{running}; {load_text()}", flush=True)
            for future in done_now:
                finished, failed = _finish(future, futures[future], cells, skipped, finished, failed, len(todo),
                                           started, results)
    if failed:
        print(f"{failed} cell(s) failed; rerun to retry them", flush=True)


def _finish(future, cell: Cell, cells: list[Cell], skipped: int, finished: int, failed: int, todo: int,
            started: float, results: Path) -> tuple[int, int]:
    """Report one finished cell and append its line; returns the updated (finished, failed)."""
    finished += 1
    now = time.perf_counter()
    elapsed = (now - started) / 60
    if cell in STARTED:
        DURATIONS.append((now - STARTED[cell]) / 60)
    eta = _eta(todo - finished, now)
    try:
        row = future.result()
    except Exception as error:  # noqa: BLE001 -- one broken cell must not lose the others
        print(f"[{skipped + finished}/{len(cells)}] FAILED {cell}: {error}", flush=True)
        return finished, failed + 1
    with open(results, "a") as handle:  # only the main thread writes
        handle.write(json.dumps(row) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    low, high = row["success_ci95"]
    print(f"[{skipped + finished}/{len(cells)}] {cell}: {row['successes']}/{row['episodes']} "
          f"({row['success_rate']:.0%}, CI {low:.0%}-{high:.0%}), {row['steps']} steps in "
          f"{row['train_minutes']:.1f} min; elapsed {elapsed:.1f} min, ETA {eta:.0f} min; {load_text()}",
          flush=True)
    return finished, failed


def _eta(remaining: int, now: float) -> float:
    """Minutes left: cells still running need the mean cell time minus what they have had; queued
    cells need the mean each; ``--jobs`` of them run at a time."""
    if not DURATIONS:
        return float("nan")
    mean = sum(DURATIONS) / len(DURATIONS)
    running = [c for c in STAGES if c in STARTED]
    left = sum(max(0.0, mean - (now - STARTED[c]) / 60) for c in running)
    left += mean * max(0, remaining - len(running))
    return left / max(1, JOBS[0])


JOBS = [1]  # --jobs of the current run (read by _eta)


def _cell_text(row: dict) -> str:
    capped = "" if row["steps"] >= row["steps_requested"] else f", {row['steps']} steps"
    if len(row.get("seed_rates", ())) > 1:  # several training seeds: their mean, then each
        each = "/".join(f"{100 * rate:.0f}" for rate in row["seed_rates"])
        return f"{row['success_rate']:.0%} (seeds {each}) · {row['train_minutes']:.1f} min{capped}"
    low, high = row["success_ci95"]
    # Past 100 spawns a point is worth a decimal: 448 of 500 is 89.6%, under the 90% bar that 90% would hide.
    rate = f"{row['success_rate']:.1%}" if row["episodes"] > 100 else f"{row['success_rate']:.0%}"
    return f"{rate} ({low:.0%}-{high:.0%}) · {row['train_minutes']:.1f} min{capped}"


def merge_seeds(rows: list[dict]) -> list[dict]:
    """One row per cell of any training seed count: a rerun's last line per seed, then with several seeds
    their mean success (``seed_rates`` keeps each, in seed order; ``success_ci95`` becomes their range, what
    the plot's bars show), mean minutes and the fewest steps."""
    latest: dict[tuple, dict] = {}
    for row in rows:
        latest[row_key(row)] = row
    cells: dict[tuple, list[dict]] = defaultdict(list)
    for key, row in sorted(latest.items(), key=lambda item: item[0][-1]):
        cells[key[:-1]].append(row)
    merged = []
    for runs in cells.values():
        if len(runs) == 1:
            merged.append(runs[0])
            continue
        rates = [r["success_rate"] for r in runs]
        merged.append({**runs[0], "seed": [int(r.get("seed", 0)) for r in runs], "seed_rates": rates,
                       "success_rate": sum(rates) / len(rates), "success_ci95": [min(rates), max(rates)],
                       "successes": sum(r["successes"] for r in runs),
                       "episodes": sum(r["episodes"] for r in runs),
                       "train_minutes": sum(r["train_minutes"] for r in runs) / len(runs),
                       "steps": min(r["steps"] for r in runs)})
    return merged


def _inference_text(inference: dict | None) -> str:
    if not inference:
        return "temporal ensemble k=0.01 (rows written before the results kept the inference)"
    if inference.get("query_every"):
        return f"chunks, query every {inference['query_every']}"
    return f"temporal ensemble k={inference['temporal_ensemble']}"


def _checkpoint_text(row: dict) -> str:
    if "checkpoint_step" not in row:
        return "best.pt by validation loss (rows written before the results kept the checkpoint's step)"
    return "latest.pt (end of training)" if row["checkpoint_step"] == row["steps"] else "best.pt"


def _weights_text(row: dict) -> str:
    ema = (row.get("recipe") or {}).get("ema")
    return f"moving average of the weights (--ema {ema})" if ema else "last step's weights (no --ema)"


def _groups(rows: list[dict]) -> list[tuple[str, str]]:
    """(device, spawn) pairs present, the reference first: scripted demos on the default spawns."""
    return sorted({(r["device"], r["spawn"]) for r in rows},
                  key=lambda g: (g[0] != "scripted", g[1] != DEFAULT_STRATEGY, g))


def table(rows: list[dict], experts: dict[str, dict] | None = None) -> str:
    """One markdown table per (device, spawn): tasks down, demo counts across; the scripted expert's own
    success first where ``experts`` has it, and per demo count ACT's success as a share of the expert's."""
    experts = experts or {}
    out = []
    for device, spawn in _groups(rows):
        group = [r for r in rows if (r["device"], r["spawn"]) == (device, spawn)]
        latest = {}
        for r in group:
            latest[(r["task"], int(r["demos"]))] = r  # a rerun cell: the last line wins
        demos = sorted({d for _, d in latest})
        tasks = [t for t in DEFAULT_TASKS if any(k[0] == t for k in latest)]
        tasks += sorted({k[0] for k in latest} - set(tasks))
        out.append(f"### {device} demos, {spawn} spawns\n")
        episodes = "/".join(str(n) for n in sorted({r["episodes"] for r in group}))
        out.append(f"success on {episodes} unseen random spawns (Wilson 95% CI) · training minutes"
                   " (steps shown where --max-minutes stopped training first)\n")
        modes = sorted({_inference_text(r.get("inference")) for r in latest.values()})
        picked = sorted({_checkpoint_text(r) for r in latest.values()})
        out.append(f"inference: {'; '.join(modes)} · checkpoint: {'; '.join(picked)}\n")
        # Cells trained with another recipe than today's act-train defaults are marked with *.
        newest = _weights_text({"recipe": {"ema": TrainConfig.ema}})
        older = sorted({_weights_text(r) for r in latest.values()} - {newest})
        out.append(f"weights: {newest}" + (f"; * {'; '.join(older)}" if older else "") + "\n")
        with_expert = any(t in experts for t in tasks)
        out.append("| task | " + ("expert | " if with_expert else "") + " | ".join(f"{d} demos" for d in demos) + " |")
        out.append("|---|" + ("---|" if with_expert else "") + "---|" * len(demos))
        for task in tasks:
            cells = [(_cell_text(latest[(task, d)]) + ("" if _weights_text(latest[(task, d)]) == newest else " *")
                      if (task, d) in latest else "–") for d in demos]
            if with_expert:
                cells.insert(0, f"{experts[task]['success_rate']:.0%}" if task in experts else "–")
            out.append(f"| {task} | " + " | ".join(cells) + " |")
        if with_expert:
            out.append("")
            for d in demos:
                out.append(_against_expert(d, {t: latest[(t, d)] for t in tasks if (t, d) in latest}, experts))
        loads = [r["load_after_train"][0] for r in group]
        out.append(f"\nload average (1 min) after training: {min(loads):.2f}-{max(loads):.2f} on "
                   f"{group[0].get('cores')} cores (--jobs {max(r.get('jobs', 1) for r in group)}; other "
                   "processes on the machine count in the load too)\n")
    return "\n".join(out)


def _against_expert(demos: int, cells: dict[str, dict], experts: dict[str, dict]) -> str:
    """The issue's yardsticks for one demo count: ACT's mean share of the expert's success, and how many
    tasks the expert masters (>= 95%) reach 90% with ACT."""
    paired = [(cells[t]["success_rate"], experts[t]["success_rate"]) for t in cells if t in experts]
    if not paired:
        return ""
    act, expert = (sum(column) / len(paired) for column in zip(*paired))
    mastered = [a for a, e in paired if e >= 0.95]
    minutes = [cells[t]["train_minutes"] for t in cells]
    return (f"{demos} demos, {len(paired)} tasks: ACT {100 * act:.1f}% on average against the expert's "
            f"{100 * expert:.1f}% on the same spawns ({100 * act / expert:.1f}% of it); of the {len(mastered)} tasks "
            f"the expert succeeds on >= 95% of spawns, {sum(a >= 0.90 for a in mastered)} reach >= 90% with ACT; "
            f"training {min(minutes):.1f}-{max(minutes):.1f} min per task (mean {sum(minutes) / len(minutes):.1f}).\n")


def plot_suite(rows: list[dict], experts: dict[str, dict], path: Path) -> None:
    """Per task, the expert's success beside ACT's at each demo count (horizontal bars, worst ACT first);
    ``rows`` of one (device, spawn) group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    latest = {(r["task"], int(r["demos"])): r for r in rows}
    demos = sorted({d for _, d in latest})
    tasks = sorted({t for t, _ in latest}, key=lambda t: (min(100 * latest[(t, d)]["success_rate"]
                                                              for d in demos if (t, d) in latest), t))
    height = 0.8 / (len(demos) + 1)
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(tasks) + 1.5))
    ys = np.arange(len(tasks))
    ax.barh(ys, [100 * experts[t]["success_rate"] if t in experts else 0 for t in tasks], height=height,
            color="0.7", label="scripted expert")
    noises = sorted({float(r.get("expert_noise") or 0) for r in rows})
    noise = f" (expert noise {', '.join(f'{n:g}' for n in noises)})" if any(noises) else ""
    for i, d in enumerate(demos):
        ax.barh(ys + (i + 1) * height, [100 * latest[(t, d)]["success_rate"] if (t, d) in latest else 0
                                         for t in tasks], height=height, color=f"C{i}", label=f"ACT, {d} demos{noise}")
    ax.set_yticks(ys + height * len(demos) / 2)
    ax.set_yticklabels(tasks, fontsize=7)
    ax.axvline(90, color="k", lw=0.6, ls="--")
    ax.set_xlim(0, 102)
    ax.set_xlabel("success on 100 unseen spawns (%)")
    ax.set_title("ACT vs the scripted expert on the same unseen spawns, per task")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in DEFAULT_TASKS if any(r["task"] == t for r in rows)]
    tasks += sorted({r["task"] for r in rows} - set(tasks))
    groups = _groups(rows)
    fig, ax = plt.subplots(figsize=(11, 5))
    markers = "osd^v<>"
    for gi, (device, spawn) in enumerate(groups):
        for ti, task in enumerate(tasks):
            latest = {int(r["demos"]): r for r in rows if (r["task"], r["device"], r["spawn"]) == (task, device, spawn)}
            if not latest:
                continue
            demos = sorted(latest)
            rate = [100 * latest[d]["success_rate"] for d in demos]
            # float rounding can put the Wilson bound a hair past the rate: errorbar refuses negatives
            low = [max(0.0, 100 * (latest[d]["success_rate"] - latest[d]["success_ci95"][0])) for d in demos]
            high = [max(0.0, 100 * (latest[d]["success_ci95"][1] - latest[d]["success_rate"])) for d in demos]
            # each (device, spawn) group a little to the right of the previous one, so points do not overlap
            ax.errorbar([d * (1 + 0.05 * gi) for d in demos], rate, yerr=[low, high],
                        marker=markers[gi % len(markers)], capsize=3, color=f"C{ti}", linestyle=["-", "--", ":", "-."][gi % 4],
                        label=f"{task} ({device}, {spawn})")
    ax.set_xscale("log")
    all_demos = sorted({int(r["demos"]) for r in rows})
    ax.set_xticks(all_demos)
    ax.set_xticklabels([str(d) for d in all_demos])
    ax.set_xlabel("demonstrations")
    ax.set_ylabel("success on unseen spawns (%)")
    ax.set_ylim(-3, 103)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: the points stay visible
    several = any(len(r.get("seed_rates", ())) > 1 for r in rows)
    ax.set_title("ACT (default config) success vs demonstrations, 95% Wilson CI"
                 + (" (several training seeds: their mean and range)" if several else ""))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(results: Path, png: Path, expert_path: Path | None = None) -> None:
    rows = merge_seeds(read_results(results))
    if not rows:
        print(f"no results in {results} yet")
        return
    experts = expert_rates(expert_path) if expert_path else {}
    text = table(rows, experts)
    print(text)
    results.with_suffix(".md").write_text("# ACT success vs demonstrations (benchmarks/success.py)\n\n" + text + "\n")
    reference = [r for r in rows if (r["device"], r["spawn"]) == _groups(rows)[0]]  # e.g. scripted, stratified
    if len({r["task"] for r in reference}) > len(DEFAULT_TASKS):
        # The whole suite: one bar chart per task beside the expert; the curves stay on the benchmark tasks.
        suite = png.with_name(png.stem + "_suite.png")
        plot_suite(reference, experts, suite)
        plot([r for r in rows if r["task"] in DEFAULT_TASKS], png)
        pictures = f"{png}, {suite}"
    else:
        plot(rows, png)
        pictures = str(png)
    print(f"table: {results.with_suffix('.md')}; plots: {pictures}; {load_text()}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS),
                        help="MetaWorld v3 tasks; 'all' for all 50 (default: the seven benchmark tasks)")
    parser.add_argument("--demos", nargs="+", type=int, default=list(DEFAULT_DEMOS), help="demo counts")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0],
                        help="act-train --seed of each cell's runs, on the same demos; with several the tables show "
                             "their mean and each (one run moves by up to tens of points with its seed)")
    parser.add_argument("--device", choices=("scripted", "humanlike", "operator"), default="scripted",
                        help="who records the demos: the scripted expert, its human-like perturbation, or the "
                             "simulated person at the keyboard window (benchmarks/operator_model.py)")
    parser.add_argument("--spawn", choices=("stratified", "chebyshev", "fixed"), default=DEFAULT_STRATEGY,
                        help="how the demos' spawns are drawn (teleop record --spawn): evenly (the default), more "
                             "near the faces of the spawn box, or every demo from one spawn (the single-spawn "
                             "failure; trained with --allow-single-spawn)")
    parser.add_argument("--steps", type=int, default=3000, help="training steps (at most; act-train's default)")
    parser.add_argument("--max-minutes", type=float, default=4.8,
                        help="training wall-time cap per cell (the target: under 5 minutes)")
    parser.add_argument("--episodes", type=int, default=100, help="evaluation episodes on unseen spawns")
    parser.add_argument("--query-every", type=int, help="act-eval --query-every (default: the checkpoint's inference)")
    parser.add_argument("--temporal-ensemble", type=float,
                        help="act-eval --temporal-ensemble (default: the checkpoint's inference)")
    parser.add_argument("--jobs", type=int, default=1, help="cells run side by side (each single-threaded)")
    parser.add_argument("--observations", choices=("state", "vision"), default="state",
                        help="what the policy sees (act-train --observations); vision records the demos with images")
    parser.add_argument("--cameras", default="corner2,gripperPOV", help="with --observations vision")
    parser.add_argument("--image-size", type=int, default=96, help="with --observations vision")
    parser.add_argument("--train-args", default="", help="further act-train flags for every cell, written with '=', e.g. "
                        "--train-args=\"--image-shift 4\" (kept in each row)")
    parser.add_argument("--results", help="JSON-lines results file (default: results/success.jsonl, "
                        "success_vision.jsonl with --observations vision)")
    parser.add_argument("--png", help="success vs demos plot (default: beside --results)")
    parser.add_argument("--cache", default=str(RESULTS_DIR / "cache"), help="demos, runs and evals")
    parser.add_argument("--heartbeat", type=float, default=2.0,
                        help="minutes between progress lines while cells run (0: only when a cell ends)")
    parser.add_argument("--expert-results", default=str(RESULTS_DIR / "expert.jsonl"),
                        help="the scripted expert's success per task on the evaluation spawns (run once per task)")
    parser.add_argument("--expert-noise", type=float, default=0.0,
                        help="record the scripted demos with teleop record --expert-noise (DART); 0: without")
    parser.add_argument("--hold-steps", type=int, default=HOLD_STEPS[0],
                        help="record the demos with teleop record --hold-steps (steps kept after the first success; "
                             "the suite's tables before 2026-12-08 used 20)")
    parser.add_argument("--no-expert", action="store_true", help="do not run the scripted expert's column")
    parser.add_argument("--table-only", action="store_true", help="print the table and plot; run nothing")
    parser.add_argument("--reevaluate", metavar="RESULTS",
                        help="train nothing: evaluate again (act-eval's current defaults) the cached runs of this "
                             "results file's rows that match --tasks/--demos/--device/--spawn, into --results")
    parser.add_argument("--more-spawns", type=int, metavar="N",
                        help="with --reevaluate: evaluate each run on N further unseen spawns (the seeds after its "
                             "row's) and write rows pooled over both draws")
    parser.add_argument("--below", type=float, default=None, metavar="RATE",
                        help="with --reevaluate: only the rows whose success rate is under RATE (e.g. 1 skips 100%%)")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.steps < 1 or args.episodes < 1 or any(d < 1 for d in args.demos):
        parser.error("--jobs, --steps, --episodes and --demos must be at least 1")
    if (args.more_spawns is not None or args.below is not None) and not args.reevaluate:
        parser.error("--more-spawns and --below apply to --reevaluate OLD (the runs to evaluate again)")
    if args.more_spawns is not None and args.more_spawns < 1:
        parser.error("--more-spawns must be at least 1")
    if any(seed < 0 for seed in args.seeds) or len(set(args.seeds)) < len(args.seeds):
        parser.error("--seeds: distinct numbers >= 0")
    if args.tasks == ["all"]:
        from teleop.env import task_names

        args.tasks = task_names()
    if args.expert_noise:
        if args.device != "scripted":
            parser.error("--expert-noise applies to --device scripted")
        EXPERT_NOISE[0] = args.expert_noise
    if args.hold_steps < 0:
        parser.error("--hold-steps: a number of steps >= 0")
    if args.hold_steps != HOLD_STEPS[0] and args.device == "operator":
        parser.error("--hold-steps applies to the recorded devices (scripted, humanlike); the simulated operator "
                     "holds the live window's --hold-s")
    HOLD_STEPS[0] = args.hold_steps
    if args.observations == "vision":
        VISION.update(cameras=args.cameras, image_size=args.image_size)
    results = Path(args.results or RESULTS_DIR / ("success_vision.jsonl" if VISION["cameras"] else "success.jsonl"))
    png = Path(args.png or results.with_suffix(".png"))
    if not args.table_only:
        # A column at a time (every task at the first --demos count, then the next), so a run cut short
        # still holds whole columns.
        cells = [Cell(task, demos, args.device, args.spawn, seed)
                 for demos in args.demos for task in args.tasks for seed in args.seeds]
        if args.reevaluate:
            source = Path(args.reevaluate)
            if source.resolve() == results.resolve():
                parser.error("--reevaluate: give the old results file, and a new --results for the new rows")
            SOURCE_ROWS.update({row_key(row): row for row in read_results(source)
                                if (Path(row["run"]) / "run").is_dir()
                                and (args.below is None or row["success_rate"] < args.below)})
            cells = [c for c in cells if c.key in SOURCE_ROWS]
            if not cells:
                parser.error(f"--reevaluate: no row of {source} matches the cells asked for"
                             + (f", scored under {args.below:g}" if args.below is not None else "")
                             + " and still has its run folder in the cache")
            run_grid(cells, args, results, work=more_spawns_cell if args.more_spawns else reevaluate_cell)
        else:
            if not args.no_expert:
                run_experts(args.tasks, args.episodes, Path(args.expert_results), args.jobs)
            run_grid(cells, args, results)
    report(results, png, Path(args.expert_results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

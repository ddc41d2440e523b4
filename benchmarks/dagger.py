"""HG-DAgger with the simulated corrector against plain demos, at equal operator steps.

    .venv/bin/python benchmarks/dagger.py --tasks pick-place-v3 peg-insert-side-v3 bin-picking-v3 --jobs 2
    .venv/bin/python benchmarks/dagger.py --table-only

Per task, everything with the project's own commands (subprocesses, one thread each):

1. ``teleop record`` 60 scripted demos (seed 0, stratified spawns, the recorder's default steps kept past
   success: 40 since 2026-12-08, 20 in the rows before); the first ``--start-demos`` (10) are the start set.
2. Round 0: ``act-train`` on the start set (defaults, 3000 steps), ``act-eval`` on 100 unseen spawns
   (seeds 1,000,000+).
3. Rounds 1..``--rounds``: ``act-eval`` of the last round's policy on ``--probe`` (100) spawns of their own
   (seeds 3,000,000 + 10,000 r), ``teleop correct --device corrector --spawns-from PROBE --failures-only
   --episodes --per-round`` (the simulated corrector of devices/corrector.py takes over where the policy
   goes wrong; the corrections are spent on the spawns the policy failed; as in ``teleop record``, only
   corrections that end in success are kept), ``act-train`` on the start set +
   every round's corrections (HG-DAgger: the person's steps are the labels), ``act-eval`` as in round 0.
   A round with nothing kept to learn from (no failure on the probe, or no correction succeeded) keeps the
   previous policy.
4. Plain demos at equal operator steps: the start set plus the next demos of step 1 until their steps
   reach the last round's operator steps; and the plain 20-demo run. Both trained and evaluated alike.
5. With ``--weights``: the last round's data (start set + every round's corrections) trained again with
   each of ``WEIGHTS`` (how much a correction counts, Sirius's labels), beside the HG-DAgger default of
   step 3, to choose act-train's correction defaults from measurements.

Operator steps are the steps a person drives: every step of a plain demo, the /intervention steps of a
correction episode. The steps the person only watched the policy drive are reported beside them.
One JSON line per trained policy goes to ``--results`` (dagger.jsonl); a finished stage is not rerun.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from success import _run, load_values, read_results  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "dagger.jsonl"
POOL = 60  # scripted demos recorded per task: the start set and the plain runs draw from them
PROBE_BASE = 3_000_000
# Step 5's act-train flags, beside the default (HG-DAgger: the person's steps only, weight 1).
WEIGHTS = {
    "weights_correction_2": ["--correction-weight", "2"],
    "weights_correction_0.5": ["--correction-weight", "0.5"],
    "weights_sirius": ["--policy-weight", "1", "--drop-before-takeover", "15"],
}


def steps_of(folder: Path) -> tuple[int, int, int]:
    """(operator steps, watched steps, episodes) of a folder: person-driven and policy-driven steps."""
    from teleop.episode import episode_files, read_episode

    person = watched = 0
    files = episode_files(folder)
    for path in files:
        episode = read_episode(path)
        if episode.intervention is None:
            person += episode.num_steps
        else:
            person += int(episode.intervention.sum())
            watched += int((~episode.intervention).sum())
    return person, watched, len(files)


def subset(pool: Path, out: Path, count: int) -> Path:
    """The first ``count`` episodes of ``pool`` as a folder of their own (hard links)."""
    from teleop.episode import episode_files

    if out.exists():
        return out
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for path in episode_files(pool)[:count]:
        os.link(path, partial / path.name)
    partial.rename(out)
    return out


def demos_for_steps(pool: Path, start: int, steps: int) -> int:
    """How many demos of ``pool`` (at least ``start``) reach ``steps`` operator steps."""
    from teleop.episode import episode_files, read_attrs

    total, count = 0, 0
    for path in episode_files(pool):
        total += int(read_attrs(path)["num_steps"])
        count += 1
        if count >= start and total >= steps:
            return count
    raise RuntimeError(f"{pool}: {POOL} demos hold {total} steps, fewer than {steps}; raise POOL")


class Task:
    def __init__(self, task: str, args):
        self.task, self.args = task, args
        self.work = Path(args.cache) / task
        self.work.mkdir(parents=True, exist_ok=True)
        self.log = self.work / "log.txt"
        self.done = {row["stage"]: row for row in read_results(Path(args.results)) if row["task"] == task}

    def say(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M')}] {self.task}: {text}", flush=True)

    def train_and_evaluate(self, stage: str, data: list[Path], extra: dict, train_args=()) -> dict:
        if stage in self.done:
            return self.done[stage]
        run, evaluation = self.work / "runs" / stage, self.work / "evals" / stage
        shutil.rmtree(run, ignore_errors=True)
        shutil.rmtree(evaluation, ignore_errors=True)
        self.say(f"training {stage} on {', '.join(d.name for d in data)}")
        minutes = _run([sys.executable, "-m", "act.train", "--data", *map(str, data), "--out", str(run),
                        "--steps", str(self.args.steps), "--max-minutes", "4.8", "--threads", "1", "--no-progress",
                        "--seed", "0", *train_args], self.log)
        eval_minutes = _run([sys.executable, "-m", "act.evaluate", "--ckpt", str(run), "--episodes",
                             str(self.args.episodes), "--videos", "0", "--workers", "1", "--out", str(evaluation)],
                            self.log)
        report = json.loads((evaluation / "results.json").read_text())
        summary = report["summary"]
        person = watched = episodes = 0
        for folder in data:
            p, w, n = steps_of(folder)
            person, watched, episodes = person + p, watched + w, episodes + n
        row = {"task": self.task, "stage": stage, **extra, "operator_steps": person, "watched_steps": watched,
               "episodes_trained": episodes, "successes": summary["successes"], "episodes": summary["episodes"],
               "success_rate": summary["success_rate"], "success_ci95": summary["success_ci95"],
               "inference": report["inference"], "train_minutes": round(minutes, 3),
               "eval_minutes": round(eval_minutes, 3), "load": load_values(), "host": os.uname().nodename,
               "cores": os.cpu_count(), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        with open(self.args.results, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        self.done[stage] = row
        self.say(f"{stage}: {summary['successes']}/{summary['episodes']} with {person} operator steps")
        return row

    def carry_over(self, previous: str, stage: str, rnd: int) -> None:
        """A round without failures to correct keeps the previous policy and its result (nothing is trained)."""
        if stage in self.done:
            return
        row = {**self.done[previous], "stage": stage, "round": rnd, "corrections": False, "train_minutes": 0.0,
               "eval_minutes": 0.0, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        with open(self.args.results, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        self.done[stage] = row
        self.say(f"{stage}: nothing to learn from this round; the policy of {previous} stands")

    def correct(self, rnd: int, policy: Path) -> Path | None:
        """Round ``rnd``'s corrections of ``policy`` on its failures (None: it failed nowhere on the probe)."""
        out = self.work / "corrections" / f"round_{rnd}"
        if out.exists():
            return out
        probe = self.work / "probes" / f"round_{rnd}"
        shutil.rmtree(probe, ignore_errors=True)
        _run([sys.executable, "-m", "act.evaluate", "--ckpt", str(policy), "--episodes", str(self.args.probe),
              "--seed", str(PROBE_BASE + 10_000 * rnd), "--videos", "0", "--workers", "1", "--out", str(probe)],
             self.log)
        failures = sum(not e["success"] for e in json.loads((probe / "results.json").read_text())["episodes"])
        self.say(f"round {rnd}: the policy failed {failures} of {self.args.probe} probe spawns")
        if not failures:
            return None
        partial = out.with_name(out.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        _run([sys.executable, "-m", "teleop.cli", "correct", "--ckpt", str(policy), "--device", "corrector",
              "--spawns-from", str(probe), "--failures-only", "--episodes", str(self.args.per_round),
              "--out", str(partial), "--quiet"], self.log)
        if not any(partial.glob("episode_*.hdf5")):  # the corrector fixed none of them: nothing to learn from
            shutil.rmtree(partial)
            self.say(f"round {rnd}: no correction succeeded")
            return None
        partial.rename(out)
        return out

    def run(self) -> None:
        args = self.args
        pool = self.work / "demos" / "pool"
        if not pool.exists():
            partial = pool.with_name("pool.partial")
            shutil.rmtree(partial, ignore_errors=True)
            _run([sys.executable, "-m", "teleop.cli", "record", "--device", "scripted", "--task", self.task,
                  "--episodes", str(POOL), "--seed", "0", "--spawn", "stratified",
                  "--out", str(partial), "--quiet"], self.log)
            partial.rename(pool)
        start = subset(pool, self.work / "demos" / f"start_{args.start_demos}", args.start_demos)
        data = [start]
        policy = self.work / "runs" / "round_0"
        self.train_and_evaluate("round_0", data, {"round": 0, "kind": "dagger"})
        for rnd in range(1, args.rounds + 1):
            stage = f"round_{rnd}"
            corrections = self.correct(rnd, policy)
            if corrections is None:  # nothing to correct: the same data, the same policy
                self.carry_over(f"round_{rnd - 1}", stage, rnd)
                continue
            data = data + [corrections]
            self.train_and_evaluate(stage, data, {"round": rnd, "kind": "dagger", "corrections": True})
            policy = self.work / "runs" / stage
        final = self.done[f"round_{args.rounds}"]["operator_steps"]
        count = demos_for_steps(pool, args.start_demos, final)
        plain = subset(pool, self.work / "demos" / f"plain_{count}", count)
        self.train_and_evaluate("plain_equal_steps", [plain], {"kind": "plain", "demos": count})
        twenty = subset(pool, self.work / "demos" / "plain_20", 20)
        self.train_and_evaluate("plain_20", [twenty], {"kind": "plain", "demos": 20})
        if args.weights and len(data) > 1:
            last = max(row["round"] for row in self.done.values() if row["kind"] == "dagger" and row.get("corrections"))
            for stage, flags in WEIGHTS.items():
                self.train_and_evaluate(stage, data, {"kind": "weights", "round": last, "train_args": flags},
                                        train_args=flags)


def table(rows: list[dict]) -> str:
    out = ["| task | stage | operator steps (watched) | success on 100 unseen spawns |", "|---|---|---|---|"]
    order = {"round_0": 0, "round_1": 1, "round_2": 2, "round_3": 3, "plain_equal_steps": 8, "plain_20": 9,
             **{stage: 10 + i for i, stage in enumerate(WEIGHTS)}}
    latest = {}
    for row in rows:
        latest[(row["task"], row["stage"])] = row
    for (task, stage), row in sorted(latest.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 5))):
        low, high = row["success_ci95"]
        name = {"dagger": stage, "plain": f"{stage} ({row.get('demos')} demos)",
                "weights": f"round {row.get('round')} data, {' '.join(row.get('train_args', []))}"}[row["kind"]]
        out.append(f"| {task} | {name} | {row['operator_steps']} ({row['watched_steps']}) | "
                   f"{row['successes']}/{row['episodes']} ({low:.0%}-{high:.0%}) |")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["pick-place-v3", "peg-insert-side-v3", "bin-picking-v3"])
    parser.add_argument("--start-demos", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-round", type=int, default=10, help="correction episodes per round (at most)")
    parser.add_argument("--probe", type=int, default=100, help="spawns the last policy is probed on per round")
    parser.add_argument("--steps", type=int, default=3000, help="training steps per policy")
    parser.add_argument("--episodes", type=int, default=100, help="unseen evaluation spawns per policy")
    parser.add_argument("--jobs", type=int, default=1, help="tasks run side by side")
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--cache", default=str(ROOT / "benchmarks" / "results" / "cache" / "dagger"))
    parser.add_argument("--weights", action="store_true",
                        help="also train the last round's data with each of WEIGHTS (step 5)")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args(argv)
    if not args.table_only:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for future in [pool.submit(Task(task, args).run) for task in args.tasks]:
                future.result()
        print(f"done in {(time.perf_counter() - started) / 60:.1f} min", flush=True)
    print(table(read_results(Path(args.results))))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Choose how a trained run turns chunks into actions, from rollouts on held-out spawns.

Neither inference wins everywhere. On the 50-task suite at 20 scripted demos (BENCHMARKS.md, "Every
MetaWorld v3 task") the same checkpoints scored, with open-loop chunks of 5 against ensembling
(k = -0.1): bin-picking 69 against 88, lever-pull 88 against 97, box-close 67 against 78, but
push-back 84 against 68 and stick-pull 84 against 78. A rule by who recorded the demos
(act.config.default_inference) is right on average only. So after training, act-train runs the
checkpoint act-eval would open with each candidate on the same spawns, drawn from seeds
SELECTION_BASE_SEED.. (never training's, never act-eval's 1,000,000..), and stores the one that succeeds
on more of them; a tie keeps the default. The choice, and the counts behind it, go into the checkpoint
("inference", "inference_choice"), and act-eval reports them.
"""

from __future__ import annotations

import time
from pathlib import Path

from act.config import DEFAULT_QUERY_EVERY, DEFAULT_TEMPORAL_ENSEMBLE
from act.metrics import WEAK_SHARE, short_of_data_advice

SELECTION_BASE_SEED = 2_000_000
"""First seed of the spawns the inference is chosen on: apart from recordings (0..) and act-eval (10**6..)."""


def candidates(default: dict, chunk_size: int) -> list[dict]:
    """The default first (it wins ties), then the other way of running chunks."""
    chunks = {"temporal_ensemble": None, "query_every": min(DEFAULT_QUERY_EVERY, chunk_size)}
    ensemble = {"temporal_ensemble": DEFAULT_TEMPORAL_ENSEMBLE, "query_every": None}
    return [dict(default)] + [c for c in (chunks, ensemble) if c != default]


def describe(inference: dict) -> str:
    if inference.get("temporal_ensemble") is not None:
        return f"ensemble k={inference['temporal_ensemble']:g}"
    return f"chunks of {inference['query_every']}"


def choose_inference(checkpoint: dict, task: str, spawn_low, spawn_high, *, episodes: int, max_steps: int,
                     training_seeds=(), default: dict) -> dict:
    """Run each candidate on the same `episodes` held-out spawns; returns the record act-train stores:
    {"chosen", "default", "episodes", "base_seed", "max_steps", "candidates": [{"inference", "successes"}],
    "seconds"}."""
    from act.policy import Policy
    from act.rollout import evaluation_spawns, rollout

    started = time.perf_counter()
    spawns = evaluation_spawns(spawn_low, spawn_high, episodes, base_seed=SELECTION_BASE_SEED,
                               training_seeds=training_seeds)
    tried = []
    for inference in candidates(default, int(checkpoint["config"]["chunk_size"])):
        policy = Policy.from_checkpoint(checkpoint, **inference)
        results = rollout(policy, task, spawns, max_steps=max_steps)
        tried.append({"inference": inference, "successes": sum(r.success for r in results)})
    best = max(tried, key=lambda c: c["successes"])  # max keeps the first of equals: the default
    return {"chosen": best["inference"], "default": dict(default), "episodes": episodes,
            "base_seed": SELECTION_BASE_SEED, "max_steps": max_steps, "candidates": tried,
            "seconds": round(time.perf_counter() - started, 1)}


def summary_line(choice: dict) -> str:
    """'inference: chunks of 5 41/50, ensemble k=-0.1 46/50 on held-out spawns -> ensemble k=-0.1'"""
    counts = ", ".join(f"{describe(c['inference'])} {c['successes']}/{choice['episodes']}"
                       for c in choice["candidates"])
    return (f"inference: {counts} on held-out spawns (seeds {choice['base_seed']}+, {choice['seconds']:.0f} s)"
            f" -> {describe(choice['chosen'])}")


def weak_run_warning(choice: dict) -> str | None:
    """A warning when the best inference succeeds on fewer than WEAK_SHARE of the held-out spawns, else None.

    Such a run can be a bad draw of the training seed rather than a verdict on the demos: stick-pull-v3 at
    20 demos scored 0 of 50 here (and 0 of 100 in act-eval) with one seed where two other seeds of the same
    recipe on the same demos scored 92% and 90% (BENCHMARKS.md, "One run per cell is not enough")."""
    best = max(c["successes"] for c in choice["candidates"])
    if best >= WEAK_SHARE * choice["episodes"]:
        return None
    return (f"the trained policy succeeded on only {best} of {choice['episodes']} held-out spawns with either "
            f"inference: train again with another --seed (one seed can fail where others of the same data "
            f"succeed), and if it stays low, record more demos or check them with `teleop inspect`")


def short_run_advice(choice: dict, train_episodes: int, out: str, steps: int) -> str | None:
    """act.metrics.short_of_data_advice on the best inference's held-out successes."""
    best = max(c["successes"] for c in choice["candidates"])
    advice = short_of_data_advice(best, choice["episodes"], train_episodes, steps,
                                  f"record more, or correct its failures with `teleop correct --ckpt {out}`")
    return advice and f"held-out success {advice}"


def store_choice(path: Path, choice: dict) -> None:
    """Write the chosen inference into the checkpoint file at `path` (atomically)."""
    from act.checkpoint import load_checkpoint, save_checkpoint

    checkpoint = load_checkpoint(path)
    checkpoint["inference"] = dict(choice["chosen"])
    checkpoint["inference_choice"] = choice
    save_checkpoint(path, checkpoint)

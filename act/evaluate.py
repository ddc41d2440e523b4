"""`act-eval`: does a trained policy work on spawns it has never seen, and how sure are we?

    act-eval --ckpt runs/NAME --episodes 50 --out evals/NAME [--videos 5] [--workers 2]
    act-eval --ckpt runs/NAME --shard 0/2 --out evals/a ; act-eval merge evals/a evals/b --out evals/all

Evaluation spawns are independent random draws from the task's full spawn box, with seeds
``seed .. seed+episodes-1`` that must not overlap the training seeds the checkpoint recorded.
Episodes run in fixed groups of ``batch_size`` (one forward pass per group and step); a group's
results depend only on its spawns, so any worker count or sharding gives identical numbers.
"""

from __future__ import annotations

import json
import math
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from act.config import checkpoint_horizon, checkpoint_inference
from act.eval_report import merge, write_report
from act.rollout import EVAL_BASE_SEED
from teleop.errors import ToolkitError


@dataclass
class EvalConfig:
    ckpt: str = ""
    """checkpoint file, or a run folder: its latest.pt (best.pt when chosen by rollout success, --eval-every)"""
    episodes: int = 50
    """evaluation episodes, each on a fresh random spawn"""
    out: str = "evals/latest"
    """folder for results.json, results.md, the coverage PNG and the videos"""
    seed: int = EVAL_BASE_SEED
    """base seed of the evaluation spawns: episode i uses seed + i (must not overlap training seeds)"""
    query_every: int | None = None
    """open-loop chunks: query the policy every n steps and run the chunk's first n actions (default: the
    checkpoint's choice, open-loop chunks of 5 for scripted demos and ensembling for demos recorded by a
    person; BENCHMARKS.md "Stalls")"""
    temporal_ensemble: float | None = None
    """temporal ensembling instead: query every step, weigh chunk i (0 = oldest) by exp(-k*i); negative k
    favours the newest chunks (act-train picks -0.1 for demos recorded by a person)"""
    videos: int = 5
    """H.264 videos of the first K episodes (-1: all)"""
    camera: str = "corner"
    """camera for the videos (the live window's default view)"""
    video_size: int = 256
    """video frame side in pixels"""
    video_speed: float = 0.25
    """playback speed of the videos, a fraction of real time (0.25: a 55-step pick-place lasts 2.8 s)"""
    workers: int = 1
    """processes running episode groups in parallel (results do not depend on it)"""
    shard: str = ""
    """i/n: run only the i-th of n disjoint slices of the episodes (combine with `act-eval merge`)"""
    task: str = ""
    """evaluate on another task than the checkpoint's (a warning says so)"""
    max_steps: int | None = None
    """step limit per episode (default: the checkpoint's horizon, 1.5x its longest training demo and at least
    MetaWorld's 500: a policy trained on slow demos acts at their pace)"""
    batch_size: int = 10
    """episodes stepped together in one forward pass"""
    allow_seed_overlap: bool = False
    """evaluate even if evaluation seeds were used for training (the numbers then mean less)"""
    device: str = "cpu"
    """where the policy runs: cpu, or cuda when a GPU is visible to torch"""


# --------------------------------------------------------------------- planning
def _shard_groups(episodes: int, batch_size: int, shard: str) -> list[list[int]]:
    """Episode indices in groups of batch_size; with shard "i/n", the i-th contiguous slice of groups."""
    groups = [list(range(s, min(s + batch_size, episodes))) for s in range(0, episodes, batch_size)]
    if not shard:
        return groups
    try:
        i, n = (int(x) for x in shard.split("/"))
        assert 0 <= i < n
    except (ValueError, AssertionError):
        raise ToolkitError(f"--shard {shard!r}: use i/n with 0 <= i < n, e.g. --shard 0/2") from None
    bounds = np.linspace(0, len(groups), n + 1).round().astype(int)
    return groups[bounds[i]:bounds[i + 1]]


def _inference_kwargs(cfg: EvalConfig, checkpoint: dict) -> dict:
    """Policy's keyword arguments: the flags', else what act-train chose for the checkpoint."""
    if cfg.query_every is not None and cfg.temporal_ensemble is not None:
        raise ToolkitError("--query-every and --temporal-ensemble: pass one of them (open-loop chunks of n "
                           "steps, or ensembling every step), or neither for the checkpoint's choice")
    if cfg.query_every is not None:
        chunk_size = int(checkpoint["config"]["chunk_size"])
        if not 1 <= cfg.query_every <= chunk_size:
            raise ToolkitError(f"--query-every {cfg.query_every}: must be 1..{chunk_size} (the policy's chunk size)")
        return {"query_every": cfg.query_every, "temporal_ensemble": None}
    if cfg.temporal_ensemble is not None:
        if not math.isfinite(cfg.temporal_ensemble):
            raise ToolkitError(f"--temporal-ensemble {cfg.temporal_ensemble}: must be a finite number")
        return {"temporal_ensemble": cfg.temporal_ensemble, "query_every": None}
    return checkpoint_inference(checkpoint)


def _inference_why(cfg: EvalConfig, checkpoint: dict, inference: dict) -> str:
    """A few words on where the inference act-eval runs comes from."""
    if cfg.query_every is not None or cfg.temporal_ensemble is not None:
        return "set on the command line"
    choice = checkpoint.get("inference_choice")
    if choice and choice.get("chosen") == inference:
        from act.inference_choice import describe

        counts = ", ".join(f"{describe(c['inference'])} {c['successes']}/{choice['episodes']}"
                           for c in choice["candidates"])
        return f"chosen by act-train on held-out spawns: {counts}"
    if checkpoint.get("inference"):
        return "act-train's default for who recorded the demos"
    return "the checkpoint predates stored inferences"


def _horizon(cfg: EvalConfig, checkpoint: dict, path: Path) -> dict:
    """{"steps", "why"}: the step limit of every episode, the flag's, else the one act-train stored."""
    from teleop.env import LONGEST_STEPS

    try:
        steps, why = checkpoint_horizon(checkpoint)
    except (TypeError, ValueError):  # not a number: a damaged or foreign checkpoint
        steps = why = None
    valid = steps is not None and 1 <= steps <= LONGEST_STEPS
    if cfg.max_steps is None:
        if not valid:
            raise ToolkitError(f"{path} stores the horizon {checkpoint.get('horizon')!r}, not a step count in "
                               f"1..{LONGEST_STEPS}: it is damaged; pass --max-steps or retrain")
        return {"steps": steps, "why": why}
    if not 1 <= cfg.max_steps <= LONGEST_STEPS:
        raise ToolkitError(f"--max-steps {cfg.max_steps}: must be in 1..{LONGEST_STEPS} (the longest episode a "
                           f"TaskEnv runs); leave it out for the checkpoint's horizon")
    return {"steps": int(cfg.max_steps),
            "why": f"--max-steps; the checkpoint's is {steps}" if valid else "--max-steps"}


# --------------------------------------------------------------------- workers
_WORKER_CACHE: dict = {}


def _run_groups(job: dict) -> list[dict]:
    """Run some episode groups in this process. Pure function of its arguments (for worker invariance)."""
    import torch

    torch.set_num_threads(1)
    from act.policy import Policy
    from act.rollout import rollout
    from teleop.env import TaskEnv
    from teleop.spawn import Spawn
    from teleop.video import speed_label

    # A worker process runs many groups: build the policy and the environments once (a MetaWorld
    # environment takes about 0.3 s to make). Reuse cannot change results: every group resets its
    # environments to its own spawns and the policy's ensembling state.
    key = (job["ckpt"], json.dumps(job["inference"]), job["task"], job["max_steps"], job["batch_size"])
    if _WORKER_CACHE.get("key") != key:
        for env in _WORKER_CACHE.get("envs", ()):
            env.close()
        policy = Policy.load(job["ckpt"], **job["inference"], device=job["device"])
        cameras = tuple(policy.config.camera_names)
        _WORKER_CACHE.update(key=key, policy=policy, envs=[
            TaskEnv(job["task"], cameras=cameras, max_steps=job["max_steps"]) for _ in range(job["batch_size"])])
    policy, envs = _WORKER_CACHE["policy"], _WORKER_CACHE["envs"]
    if job["videos"]:
        envs[0].check_camera(job["camera"])
    records = []
    for group in job["groups"]:
        spawns = [Spawn(seed=job["seeds"][i], index=i, strategy="random",
                        candidate=np.asarray(job["candidates"][i])) for i in group]
        frames = {i: [] for i in group if i < job["videos"]}
        query_every = job["inference"]["query_every"]

        def on_step(slot, env, step, success, frames=frames, group=group):
            index = group[slot]
            if index in frames:
                from act.videos import annotate, beside

                new_chunk = query_every is None or (step % query_every == 0)
                label = ("ensemble" if query_every is None else f"chunk/{query_every}") + \
                    f"  {speed_label(job['video_speed'])}"
                frame = annotate(env.render(job["camera"], job["video_size"]), step=step,
                                 success=success, new_chunk=new_chunk, label=label)
                if policy.config.camera_names:  # what the policy saw, at its own resolution, beside it
                    frame = beside(frame, {c: env.render(c, tuple(policy.config.image_size))
                                           for c in policy.config.camera_names})
                frames[index].append(frame)

        results = rollout(policy, job["task"], spawns, max_steps=job["max_steps"], envs=envs[:len(group)],
                          on_step=on_step if frames else None)
        for slot, (index, result) in enumerate(zip(group, results)):
            record = result.to_dict()
            record["index"] = index
            record["final_frame"] = envs[slot].render(job["camera"], 160) if job["sheet"] else None
            if index in frames:
                record["video"] = _write_video(Path(job["video_dir"]) / f"episode_{index:03d}.mp4", frames[index],
                                               job["video_speed"])
            records.append(record)
    return records


def _write_video(path: Path, frames: list, speed: float) -> str | None:
    from teleop.video import VIDEO_FPS, VideoWriter, playback_steps

    try:
        with VideoWriter(path, fps=VIDEO_FPS) as video:
            for step in playback_steps(len(frames), speed):
                video.append(frames[step])
    except (OSError, ToolkitError) as error:
        print(f"warning: could not write video {path}: {error}", file=sys.stderr)
        return None
    return str(path)


# --------------------------------------------------------------------- evaluation
def evaluate(cfg: EvalConfig, *, progress: bool = True) -> dict:
    from act.checkpoint import open_checkpoint
    from act.rollout import evaluation_spawns
    from teleop.env import TaskEnv, check_task

    if cfg.episodes < 1:
        raise ToolkitError(f"--episodes must be at least 1, got {cfg.episodes}")
    if not cfg.video_speed > 0:
        raise ToolkitError(f"--video-speed {cfg.video_speed}: must be above 0 (a fraction of real time, e.g. 0.25)")
    if cfg.workers < 1:
        raise ToolkitError(f"--workers must be at least 1, got {cfg.workers}")
    if cfg.device not in ("cpu", "cuda"):
        raise ToolkitError(f"--device {cfg.device!r}: use cpu or cuda")
    if cfg.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ToolkitError("--device cuda: no CUDA device is visible to torch; use --device cpu")
    ckpt_path, checkpoint = open_checkpoint(cfg.ckpt)
    inference = _inference_kwargs(cfg, checkpoint)
    horizon = _horizon(cfg, checkpoint, ckpt_path)
    dataset = checkpoint["dataset"]
    trained_task = dataset["task"]
    task = cfg.task or trained_task
    check_task(task)
    if task != trained_task:
        warnings.warn(f"the policy was trained on {trained_task}; evaluating it on {task}")
    probe = TaskEnv(task)
    low, high = probe.spawn_low, probe.spawn_high
    if cfg.videos:
        probe.check_camera(cfg.camera)
    probe.close()

    train_files = set(dataset.get("train_files") or [e["file"] for e in dataset["episodes"]])
    train_episodes = [e for e in dataset["episodes"] if e["file"] in train_files]
    train_spawns = np.array([e["rand_vec"] for e in train_episodes])
    # Checkpoints before 2026-12-07 did not keep it: "".
    train_strategies = sorted({e.get("spawn_strategy", "") for e in train_episodes})
    training_seeds = [int(e["seed"]) for e in dataset["episodes"]]
    try:
        spawns = evaluation_spawns(low, high, cfg.episodes, base_seed=cfg.seed,
                                   training_seeds=() if cfg.allow_seed_overlap else training_seeds)
    except ToolkitError as error:
        raise ToolkitError(f"{error} (e.g. --seed {max(training_seeds) + 1 + EVAL_BASE_SEED}), "
                           "or pass --allow-seed-overlap") from None

    out = Path(cfg.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ToolkitError(f"cannot create --out {out}: {error.strerror or error}") from None
    video_dir = out / "videos"
    videos = cfg.episodes if cfg.videos < 0 else min(cfg.videos, cfg.episodes)
    if videos:
        try:
            video_dir.mkdir(parents=True, exist_ok=True)
            probe_file = video_dir / ".write-test"
            probe_file.write_bytes(b"")
            probe_file.unlink()
        except OSError as error:
            print(f"warning: videos skipped, cannot write {video_dir}: {error.strerror or error}; "
                  "the metrics are still saved", file=sys.stderr)
            videos = 0

    groups = _shard_groups(cfg.episodes, cfg.batch_size, cfg.shard)
    job = {"ckpt": str(ckpt_path), "inference": inference, "task": task, "max_steps": horizon["steps"],
           "batch_size": cfg.batch_size, "seeds": [s.seed for s in spawns],
           "candidates": [s.candidate.tolist() for s in spawns], "videos": videos, "camera": cfg.camera,
           "video_size": cfg.video_size, "video_speed": cfg.video_speed, "video_dir": str(video_dir),
           "sheet": True, "device": cfg.device}
    total = sum(len(g) for g in groups)
    started = time.perf_counter()
    records = _run_all(job, groups, cfg.workers, total, progress)
    elapsed = time.perf_counter() - started
    records.sort(key=lambda r: r["index"])
    report = {
        "checkpoint": str(ckpt_path),
        "checkpoint_step": int(checkpoint["step"]),
        "task": task,
        "trained_task": trained_task,
        "inference": inference,
        "inference_why": _inference_why(cfg, checkpoint, inference),
        "horizon": horizon,
        "seed": cfg.seed,
        "shard": cfg.shard or None,
        "elapsed_s": elapsed,
        "env_steps": int(sum(r["length"] for r in records)),
        "train_spawns": train_spawns.tolist(),
        "train_spawn_strategies": train_strategies,
        "spawn_low": low.tolist(),
        "spawn_high": high.tolist(),
    }
    sheet_frames = [(r["index"], np.asarray(r.pop("final_frame"), dtype=np.uint8), r["success"]) for r in records]
    report["episodes"] = records
    write_report(report, out, sheet_frames=sheet_frames)
    return report


def _run_all(job: dict, groups: list[list[int]], workers: int, total: int, progress: bool) -> list[dict]:
    from tqdm import tqdm

    bar = tqdm(total=total, desc="evaluating", unit="ep", file=sys.stderr, disable=not progress,
               dynamic_ncols=True)
    records: list[dict] = []
    try:
        if workers == 1 or len(groups) == 1:
            try:
                for group in groups:
                    records.extend(_run_groups({**job, "groups": [group]}))
                    bar.update(len(group))
                    bar.set_postfix(success=sum(r["success"] for r in records), refresh=False)
            finally:
                for env in _WORKER_CACHE.pop("envs", ()):
                    env.close()
                _WORKER_CACHE.clear()
        else:
            import multiprocessing

            context = multiprocessing.get_context("spawn")
            with context.Pool(min(workers, len(groups))) as pool:
                for result in pool.imap_unordered(_run_groups, [{**job, "groups": [g]} for g in groups]):
                    records.extend(result)
                    bar.update(len(result))
                    bar.set_postfix(success=sum(r["success"] for r in records), refresh=False)
    finally:
        bar.close()
    return records


OUTSIDE_SHARE = 2 / 3
"""At least this share of an evaluation's failures outside the training hull: act-eval's advice names
Chebyshev spawns for the next demos."""


def _advice(report: dict, out: Path) -> str | None:
    """act.metrics.short_of_data_advice for a whole evaluation on the task the policy was trained on."""
    from act.metrics import short_of_data_advice

    if report.get("shard") or report["task"] != report["trained_task"]:
        return None
    s = report["summary"]
    more = "record more"
    outside = (report.get("coverage") or {}).get("outside") or {}
    failed, failed_outside = s["episodes"] - s["successes"], outside.get("episodes", 0) - outside.get("successes", 0)
    already = report.get("train_spawn_strategies") == ["chebyshev"]
    if failed and failed_outside >= OUTSIDE_SHARE * failed and not already:
        # Where failures sat outside the hull, Chebyshev spawns helped (BENCHMARKS.md, "Spawns spread toward
        # the faces": push-back, reach-wall); where they sat inside, they cost (reach).
        more = (f"record more ({failed_outside} of the {failed} failures lie outside the training spawns' hull: "
                f"`teleop record --spawn chebyshev` puts more new demos near the faces of the spawn box)")
    return short_of_data_advice(
        s["successes"], s["episodes"], len(report["train_spawns"]), report["checkpoint_step"],
        f"{more}, or correct the failures of this evaluation with `teleop correct --ckpt "
        f"{report['checkpoint']} --spawns-from {out} --failures-only`")


# --------------------------------------------------------------------- CLI
def main(argv=None) -> int:
    import argparse

    from act.flags import add_dataclass_flags

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["merge"]:
            parser = argparse.ArgumentParser(prog="act-eval merge", description="combine act-eval shards")
            parser.add_argument("folders", nargs="+")
            parser.add_argument("--out", required=True)
            args = parser.parse_args(argv[1:])
            merge(args.folders, args.out)
            print(f"results: {Path(args.out) / 'results.md'}")
            return 0
        parser = argparse.ArgumentParser(prog="act-eval", description=__doc__.splitlines()[0])
        add_dataclass_flags(parser, EvalConfig, required=("ckpt",))
        cfg = EvalConfig(**vars(parser.parse_args(argv)))
        report = evaluate(cfg)
        out = Path(cfg.out)
        print(f"results: {out / 'results.json'}, {out / 'results.md'}; coverage: {report['coverage_png']}")
        if any(e.get("video") for e in report["episodes"]):
            print(f"videos: {out / 'videos'}")
        advice = _advice(report, out)
        if advice:
            print(advice)
        return 0
    except ToolkitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""Train ACT on recorded episodes.

    act-train --data recordings/pp50 --out runs/pp50                     # one process
    act-train --data recordings/pp50 --out runs/pp50 --steps 4000 --resume   # continue a stopped run
    act-train --data recordings/pp50 --out runs/pp50 --eval-every 500    # + success on random spawns
    torchrun --standalone --nproc_per_node 2 -m act.train --data recordings/pp50 --out runs/ddp
                                                                         # DDP (gloo on CPU, nccl on GPU)

The run folder gets latest.pt (every --checkpoint-every steps and at the end), best.pt (lowest
validation loss, or highest rollout success when --eval-every is on), step_NNNNNN.pt (with
--keep-every), tb/ (TensorBoard) and loss.png. The weights saved are a moving average of the trained
weights (--ema; the trained weights themselves ride along for --resume). act-eval runs latest.pt, or
best.pt when it was chosen by rollout success (the lowest validation loss did not pick the better
policy: act/checkpoint.py, open_checkpoint).

A killed run resumed with --resume continues exactly: every step's randomness (its batch, dropout,
the CVAE's latent sample) is a function of (seed, step, rank), and the checkpoint holds the model
and optimizer state, so steps after the resume are the steps the run would have taken.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from act.config import ACTConfig, default_inference
from act.data import StateSpec, check_spawn_diversity, load_dataset, split_episodes
from teleop.errors import ToolkitError

# Fields of ACTConfig that come from the data, not from flags.
DATA_DEFINED = ("state_dim", "action_dim", "camera_names", "image_size")
# TrainConfig fields a resumed run may change without changing what it computes.
RESUMABLE_CHANGES = ("steps", "resume", "device", "threads", "workers", "progress", "strict",
                     "log_every", "val_every", "checkpoint_every", "keep_every", "eval_every",
                     "eval_episodes", "eval_max_steps", "eval_temporal_ensemble", "data", "out",
                     "allow_single_spawn", "max_minutes")
# What a checkpoint written before a TrainConfig field existed was trained with.
LEGACY_TRAIN_ARGS = {"lr_schedule": "constant", "warmup_steps": 0, "state_noise": 0.0, "relative": False,
                     "drop_idle": False, "ema": 0.0}
LR_SCHEDULES = ("constant", "cosine")
FINAL_LR_FRACTION = 0.1  # where the cosine schedule ends, as a fraction of --lr
VAL_SAMPLES = 2048  # a fixed, evenly spread subset keeps validation cheap and deterministic


@dataclass
class TrainConfig:
    data: list[str] = field(default_factory=list)
    """Folders of episode files (written by `teleop record --out`)."""
    out: str = ""
    """Run folder: checkpoints, TensorBoard logs and the loss plot go here."""
    steps: int = 3000
    """Optimizer steps in total (a resumed run continues up to this number)."""
    batch_size: int = 64
    """Samples per optimizer step and process (DDP: the effective batch is this times the processes)."""
    seed: int = 0
    """Seeds the split, the initial weights and every step's batch and noise."""
    device: str = "cpu"
    """cpu or cuda."""
    threads: int = 1
    """torch threads per process. 1 is safe when anything else runs on the machine: with 2 threads on
    2 busy cores OpenMP spin-waits and a step can take 50x longer (FACTS.md). Try 2 on an idle 2-core
    machine. 0 leaves torch's default."""
    resume: bool = False
    """Continue the run in --out from its latest.pt (same data, model and seed flags)."""
    cameras: str = ""
    """Comma-separated cameras whose recorded images the policy sees, e.g. corner2,gripperPOV
    (needs torchvision). Empty: state only."""
    state_slices: str = ""
    """Columns of the 39-float state the policy sees, as START:STOP ranges, e.g. 0:7,36:39. Empty: all 39."""
    qpos: bool = False
    """Append the robot's 9 joint positions to the state."""
    drop_idle: bool | None = None
    """Leave out the steps where the demonstrator paused (small action, nothing moved): a state-only
    policy cannot tell a pause from the motion that follows, and learns to stall (50 human-like
    pick-place demos: 34% -> 60-65%, BENCHMARKS.md). Neither flag: only in episodes recorded by a
    person (any device but the scripted expert)."""
    relative: bool = True
    """Append hand->object, object->goal and hand->goal vectors (9 floats) to the state (measured: reach-v3
    at 20 demos 79% -> 96%, pick-place-v3 at 10 demos 80% -> 86%; BENCHMARKS.md, "ACT recipe")."""
    val_fraction: float = 0.1
    """Fraction of the episodes held out for the validation loss (split by episode, seeded)."""
    val_every: int = 100
    """Steps between validation losses."""
    checkpoint_every: int = 200
    """Steps between writes of latest.pt (also written at the end)."""
    keep_every: int = 0
    """Also keep the checkpoint of every N-th step as step_NNNNNN.pt, e.g. to evaluate several points
    of one run (0: only latest.pt and best.pt)."""
    log_every: int = 10
    """Steps between logged training losses."""
    eval_every: int = 0
    """Steps between rollouts on random spawns (success rate logged beside the losses); 0: off."""
    eval_episodes: int = 10
    """Rollouts per evaluation, on spawns disjoint from the training seeds."""
    eval_max_steps: int = 500
    """Step limit of an evaluation rollout (MetaWorld's horizon is 500)."""
    eval_temporal_ensemble: float | None = None
    """Temporal-ensembling weight k of evaluation rollouts (0: plain mean of the live chunks). Unset: the
    inference the checkpoint stores for act-eval (open-loop chunks of 5 for scripted demos, ensembling
    with k = -0.1 for demos recorded by a person; act.config.default_inference)."""
    allow_single_spawn: bool = False
    """Train even when every training episode starts from the same spawn (experiments only)."""
    strict: bool = False
    """Stop at a damaged episode file instead of skipping it with a warning."""
    workers: int = 0
    """DataLoader worker processes (useful with images; state batches are built in-process)."""
    progress: bool = True
    """Show a progress bar."""
    max_minutes: float = 0.0
    """Stop after this many minutes of wall time and save the checkpoint (0: train for --steps)."""
    lr_schedule: str = "constant"
    """Learning rate over the run: constant, or cosine (from --lr down to a tenth of it at --steps)."""
    warmup_steps: int = 0
    """Steps of linear warm-up from 0 to --lr at the start (either schedule)."""
    state_noise: float = 0.0
    """Std of Gaussian noise added to the normalized state of every training sample (augmentation:
    the policy learns to act from states a little off the demonstrations). 0: off."""
    ema: float = 0.995
    """Decay of an exponential moving average of the weights (warming up as (1+step)/(10+step)), updated
    every step; checkpoints, validation and rollouts use the average, so where a time budget stops the
    run matters less (push-v3 at 20 demos: 92-100% over five stopping steps without it, 99% at all five
    with it; BENCHMARKS.md). 0: off, the last step's weights."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> "TrainConfig":
        if not self.data:
            raise ToolkitError("--data: pass at least one folder of episodes")
        if not self.out:
            raise ToolkitError("--out: name the run folder, e.g. --out runs/pp50")
        for name in ("steps", "batch_size", "val_every", "checkpoint_every", "log_every",
                     "eval_episodes", "eval_max_steps"):
            if getattr(self, name) < 1:
                raise ToolkitError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be >= 1")
        for name in ("eval_every", "threads", "workers", "seed", "keep_every"):
            if getattr(self, name) < 0:
                raise ToolkitError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be >= 0")
        if not 0 <= self.ema < 1:
            raise ToolkitError(f"--ema {self.ema}: must be >= 0 and below 1 (e.g. 0.995; 0: off)")
        if not (math.isfinite(self.state_noise) and self.state_noise >= 0):
            raise ToolkitError(f"--state-noise {self.state_noise}: must be a finite number >= 0")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ToolkitError(f"--lr-schedule {self.lr_schedule!r}: use one of {', '.join(LR_SCHEDULES)}")
        if self.warmup_steps < 0 or self.warmup_steps >= self.steps:
            raise ToolkitError(f"--warmup-steps {self.warmup_steps}: must be >= 0 and below --steps {self.steps}")
        if self.device not in ("cpu", "cuda"):
            raise ToolkitError(f"--device {self.device!r}: use cpu or cuda")
        return self


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    from act.flags import add_dataclass_flags

    parser = argparse.ArgumentParser(prog="act-train", description="Train an ACT policy on recorded episodes.")
    add_dataclass_flags(parser, TrainConfig, required=("data", "out"))
    add_dataclass_flags(parser, ACTConfig, skip=DATA_DEFINED, aliases={"chunk_size": ["--chunk"]},
                        title="model and optimizer (ACTConfig)")
    return parser


def parse_args(argv=None) -> tuple[TrainConfig, dict]:
    args = vars(build_parser().parse_args(argv))
    train_names = {f.name for f in dataclasses.fields(TrainConfig)}
    train = TrainConfig(**{k: v for k, v in args.items() if k in train_names})
    model = {k: v for k, v in args.items() if k not in train_names}
    return train.validate(), model


def main(argv=None) -> int:
    warnings.showwarning = _one_line_warning
    try:
        train, model_flags = parse_args(argv)
        run(train, model_flags)
    except ToolkitError as error:
        print(f"error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; continue with --resume", file=sys.stderr)
        return 130
    return 0


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    # A user reads "warning: <what and why>", not a source location.
    print(f"warning: {_one_line(message)}", file=sys.stderr)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------

@dataclass
class Distributed:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def master(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def _distributed_from_env() -> Distributed:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or "RANK" not in os.environ:
        return Distributed()
    return Distributed(rank=int(os.environ["RANK"]), local_rank=int(os.environ.get("LOCAL_RANK", 0)),
                       world_size=int(os.environ["WORLD_SIZE"]))


def lr_scale(train: TrainConfig, step: int) -> float:
    """Factor on every parameter group's base learning rate for the update after ``step`` updates.

    A function of the step alone, so a resumed run continues the same curve.
    """
    if step < train.warmup_steps:
        return (step + 1) / train.warmup_steps
    if train.lr_schedule == "constant":
        return 1.0
    span = max(1, train.steps - train.warmup_steps)
    progress = min(1.0, (step - train.warmup_steps) / span)
    return FINAL_LR_FRACTION + (1.0 - FINAL_LR_FRACTION) * 0.5 * (1.0 + math.cos(math.pi * progress))


def step_seed(seed: int, step: int, rank: int) -> int:
    """The torch seed of one step (dropout, the CVAE's latent sample): resume needs no RNG state."""
    return int(np.random.SeedSequence([seed, step, rank, 11]).generate_state(1)[0])


def run(train: TrainConfig, model_flags: dict) -> dict:
    """Train; returns the final metrics. Raises ToolkitError for anything the user can fix."""
    dist = _distributed_from_env()
    if not dist.master:
        warnings.simplefilter("ignore")  # the master reports data problems once

    # ---- data (before importing torch: a bad dataset is refused in a fraction of a second) ----
    cameras = tuple(c for c in train.cameras.split(",") if c)
    spec = StateSpec.parse(train.state_slices, qpos=train.qpos, relative=train.relative)
    dataset = load_dataset(train.data, spec=spec, cameras=cameras, strict=train.strict, drop_idle=train.drop_idle)
    if train.drop_idle is not False and dataset.idle_dropped and dist.master:
        kept = sum(e.num_steps for e in dataset.episodes)
        print(f"left out {dataset.idle_dropped} idle steps (operator pauses) of {kept + dataset.idle_dropped}"
              f"{'' if train.drop_idle else ' (human demos; --no-drop-idle keeps them)'}", flush=True)
    train_ids, val_ids = split_episodes(len(dataset.episodes), train.val_fraction, train.seed)
    train_eps = [dataset.episodes[i] for i in train_ids]
    val_eps = [dataset.episodes[i] for i in val_ids]
    check_spawn_diversity(train_eps, dataset, allow_single_spawn=train.allow_single_spawn)
    fingerprint = dataset.fingerprint()
    fingerprint["train_files"] = [e.path.name for e in train_eps]
    fingerprint["val_files"] = [e.path.name for e in val_eps]
    out = Path(train.out)
    if train.resume and not (out / "latest.pt").is_file():
        raise ToolkitError(f"--resume: {out / 'latest.pt'} does not exist; is --out the folder of the run "
                           f"to continue? (drop --resume to start a new run)")
    if not train.resume and (out / "latest.pt").exists():
        raise ToolkitError(f"{out} already holds a run (latest.pt): pass --resume to continue it, or "
                           f"choose another --out")

    # ---- model ------------------------------------------------------------------------------
    import torch

    from act.checkpoint import LATEST, load_checkpoint
    from act.model import ACTPolicy, VisionDependencyError
    from act.normalize import Normalizer

    if train.threads:
        torch.set_num_threads(train.threads)
    if train.device == "cuda" and not torch.cuda.is_available():
        raise ToolkitError("--device cuda: no CUDA device is visible to torch; use --device cpu")
    device = f"cuda:{dist.local_rank}" if train.device == "cuda" else "cpu"
    normalizer = Normalizer.from_data(np.concatenate([e.state for e in train_eps]),
                                      np.concatenate([e.action for e in train_eps]))
    try:
        config = ACTConfig(state_dim=train_eps[0].state.shape[1], action_dim=train_eps[0].action.shape[1],
                           camera_names=cameras, image_size=dataset.image_size or (128, 128),
                           **model_flags).validate()
    except ValueError as error:
        raise ToolkitError(f"model flags: {error}") from None
    torch.manual_seed(train.seed)
    try:
        model = ACTPolicy(config).to(device)
    except VisionDependencyError as error:
        raise ToolkitError(f"--cameras {train.cameras}: {error}") from None
    optimizer = model.make_optimizer()

    start_step, history, metrics = 0, _new_history(), {"best_val_loss": None, "best_success": None}
    if train.resume:
        checkpoint = load_checkpoint(out / LATEST)
        _check_resumable(checkpoint, config, train, fingerprint, out / LATEST)
        try:
            # With --ema, "model" is the average (what runs) and "train_model" the trained weights.
            model.load_state_dict(checkpoint.get("train_model", checkpoint["model"]))
            optimizer.load_state_dict(checkpoint["optimizer"])
        except (RuntimeError, ValueError, KeyError) as error:
            raise ToolkitError(f"{out / LATEST} does not fit this model "
                               f"({_one_line(error)[:200]}); start a new --out") from None
        normalizer = Normalizer.from_dict(checkpoint["normalizer"])
        start_step, history, metrics = int(checkpoint["step"]), checkpoint["history"], checkpoint["metrics"]
        if checkpoint["rng"]["world_size"] != dist.world_size:
            warnings.warn(f"the checkpoint was trained by {checkpoint['rng']['world_size']} process(es), "
                          f"this run has {dist.world_size}: batches after the resume differ from an "
                          f"uninterrupted run")
    for group in optimizer.param_groups:  # the base of --lr-schedule; saved with the optimizer
        group.setdefault("initial_lr", group["lr"])
    if dist.master:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ToolkitError(f"cannot create --out {out}: {error.strerror or error}") from None

    if dist.enabled and train.max_minutes:
        # Ranks would stop at different steps and wait for each other forever.
        raise ToolkitError("--max-minutes works in a single process only; under torchrun use --steps")
    if dist.enabled:
        torch.distributed.init_process_group("nccl" if train.device == "cuda" else "gloo")
    try:
        ema = WeightAverage(model, train.ema) if train.ema else None
        if ema is not None and train.resume:
            ema.model.load_state_dict(checkpoint["model"])
        return _train_loop(train, dist, device, model, ema, optimizer, config, normalizer, dataset,
                           train_eps, val_eps, fingerprint, start_step, history, metrics, out)
    finally:
        if dist.enabled:
            torch.distributed.destroy_process_group()


def _new_history() -> dict:
    return {"step": [], "loss": [], "l1": [], "kl": [], "val_step": [], "val_loss": [],
            "eval_step": [], "success_rate": []}


def _check_resumable(checkpoint: dict, config: ACTConfig, train: TrainConfig, fingerprint: dict,
                     path: Path) -> None:
    saved = checkpoint["config"]
    differ = [f"{k}: checkpoint {saved.get(k)!r}, now {v!r}" for k, v in config.to_dict().items()
              if saved.get(k) != v]
    if differ:
        raise ToolkitError(f"--resume: the model flags differ from {path} ({'; '.join(differ)}); "
                           f"pass the flags of the original run or start a new --out")
    saved_args = checkpoint["train_args"]
    differ = [f"--{k.replace('_', '-')}: checkpoint {saved_args.get(k)!r}, now {v!r}"
              for k, v in train.to_dict().items()
              if k not in RESUMABLE_CHANGES and saved_args.get(k, LEGACY_TRAIN_ARGS.get(k)) != v]
    if differ:
        raise ToolkitError(f"--resume: {'; '.join(differ)}; pass the original values or start a new --out")
    key = lambda fp: [(e["file"], e["seed"], e["num_steps"]) for e in fp["episodes"]]  # noqa: E731
    if key(checkpoint["dataset"]) != key(fingerprint) or checkpoint["dataset"]["task"] != fingerprint["task"]:
        raise ToolkitError(f"--resume: --data holds {len(fingerprint['episodes'])} {fingerprint['task']} "
                           f"episodes that differ from the {len(checkpoint['dataset']['episodes'])} the "
                           f"checkpoint was trained on; pass the same --data or start a new --out")


class WeightAverage:
    """An exponential moving average of a model's weights, kept in a copy of the model.

    The decay ramps up as min(decay, (1 + step) / (10 + step)) so the first steps' random weights
    fade out quickly. Buffers that are not floating point are copied."""

    def __init__(self, model, decay: float):
        import copy

        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        # The optimizer updates the trained tensors in place, so the pairs are found once.
        pairs = list(zip(self.model.state_dict().values(), model.state_dict().values()))
        self._floats = ([a for a, b in pairs if a.is_floating_point()],
                        [b.detach() for a, b in pairs if a.is_floating_point()])
        self._others = [(a, b) for a, b in pairs if not a.is_floating_point()]

    def update(self, step: int) -> None:
        """Fold in the trained weights after optimizer step ``step`` (0-based)."""
        import torch

        decay = min(self.decay, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(*self._floats, 1.0 - decay)
            for a, b in self._others:
                a.copy_(b)


def _train_loop(train, dist, device, model, ema, optimizer, config, normalizer, dataset, train_eps, val_eps,
                fingerprint, start_step, history, metrics, out) -> dict:
    import torch
    from tqdm import tqdm

    from act.checkpoint import BEST, LATEST, save_checkpoint
    from act.data import ChunkDataset, StepBatches, collate

    # What act-eval and the rollouts run unless told otherwise, chosen by who recorded the demos.
    inference = default_inference(dataset.recorded_by_person, config.chunk_size)

    raw_model = model
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(
            model, device_ids=[dist.local_rank] if train.device == "cuda" else None)

    train_set = ChunkDataset(train_eps, config.chunk_size, normalizer, cameras=config.camera_names)
    val_set = ChunkDataset(val_eps, config.chunk_size, normalizer, cameras=config.camera_names) if val_eps else None
    batches = StepBatches(len(train_set), train.batch_size, seed=train.seed, rank=dist.rank,
                          start_step=start_step, stop_step=train.steps)
    loader = torch.utils.data.DataLoader(train_set, batch_sampler=batches, collate_fn=collate,
                                         num_workers=train.workers,
                                         persistent_workers=False)

    writer = None
    eval_envs = eval_spawns = None
    if dist.master:
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops the events a killed run logged after its last checkpoint.
        writer = SummaryWriter(str(out / "tb"), purge_step=start_step if start_step else None)
        if train.eval_every:
            from act.rollout import evaluation_spawns
            from teleop.env import TaskEnv

            eval_spawns = evaluation_spawns(dataset.spawn_low, dataset.spawn_high, train.eval_episodes,
                                            training_seeds=[e.seed for e in dataset.episodes])
            eval_envs = [TaskEnv(dataset.task, cameras=config.camera_names, max_steps=train.eval_max_steps)
                         for _ in range(min(10, train.eval_episodes))]

    run_model = raw_model if ema is None else ema.model  # what validation, rollouts and act-eval use

    def weights(module) -> dict:
        return {k: v.detach().cpu() for k, v in module.state_dict().items()}

    def checkpoint_dict(step: int) -> dict:
        extra = {} if ema is None else {"train_model": weights(raw_model)}
        return {
            **extra,
            "format": "act-checkpoint/1",
            "model": weights(run_model),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "config": config.to_dict(),
            "normalizer": normalizer.to_dict(),
            "state_spec": dataset.spec.to_dict(),
            "inference": inference,
            "train_args": train.to_dict(),
            "dataset": fingerprint,
            "rng": {"scheme": "torch.manual_seed(step_seed(seed, step, rank)) each step; batches "
                              "from act.data.step_indices", "seed": train.seed,
                    "world_size": dist.world_size},
            "metrics": dict(metrics),
            "history": history,
        }

    bar = tqdm(total=train.steps, initial=start_step, disable=not (train.progress and dist.master),
               dynamic_ncols=True, desc="act-train", unit="step")
    sums = {"loss": 0.0, "l1": 0.0, "kl": 0.0}
    counted = 0
    data_time = step_time = 0.0
    last_val = metrics.get("last_val_loss")
    step = start_step
    model.train()
    tick = started = time.perf_counter()
    try:
        for batch in loader:
            fetched = time.perf_counter()
            data_time += fetched - tick
            torch.manual_seed(step_seed(train.seed, step, dist.rank))
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            if train.state_noise:
                batch["state"] = batch["state"] + train.state_noise * torch.randn_like(batch["state"])
            loss, info = model(batch)
            if not math.isfinite(info["loss"]):
                raise ToolkitError(f"the loss became {info['loss']} at step {step}; lower --lr "
                                   f"(now {config.lr}) or check the data")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            scale = lr_scale(train, step)
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * scale
            optimizer.step()
            if ema is not None:
                ema.update(step)
            step += 1
            for k in sums:
                sums[k] += info[k]
            counted += 1
            step_time += time.perf_counter() - tick
            if not dist.master:
                tick = time.perf_counter()
                continue

            if step % train.log_every == 0 or step == train.steps:
                means = {k: v / counted for k, v in sums.items()}
                history["step"].append(step)
                for k, v in means.items():
                    history[k].append(v)
                    writer.add_scalar(f"losses/{'train' if k == 'loss' else k}", v, step)
                writer.add_scalar("optim/lr", optimizer.param_groups[0]["lr"], step)
                writer.add_scalar("perf/steps_per_s", counted / max(step_time, 1e-9), step)
                writer.add_scalar("perf/data_fraction", data_time / max(step_time, 1e-9), step)
                bar.set_postfix(loss=f"{means['loss']:.3f}", l1=f"{means['l1']:.3f}",
                                kl=f"{means['kl']:.4f}",
                                val="-" if last_val is None else f"{last_val:.3f}", refresh=False)
                sums = {k: 0.0 for k in sums}
                counted = 0
                data_time = step_time = 0.0
            improved = False
            if val_set is not None and (step % train.val_every == 0 or step == train.steps):
                last_val = validation_loss(run_model, val_set, device)
                model.train()
                metrics["last_val_loss"] = last_val
                history["val_step"].append(step)
                history["val_loss"].append(last_val)
                writer.add_scalar("losses/val", last_val, step)
                if not train.eval_every and (metrics["best_val_loss"] is None or last_val < metrics["best_val_loss"]):
                    metrics["best_val_loss"] = last_val
                    metrics["best_step"] = step
                    improved = True
            if train.eval_every and (step % train.eval_every == 0 or step == train.steps):
                summary = evaluate(run_model, normalizer, dataset, eval_envs, eval_spawns, train, inference)
                model.train()
                rate = summary["success_rate"]
                history["eval_step"].append(step)
                history["success_rate"].append(rate)
                writer.add_scalar("eval/success_rate", rate, step)
                if summary["mean_final_obj_to_target"] is not None:
                    writer.add_scalar("eval/final_obj_to_target", summary["mean_final_obj_to_target"], step)
                bar.write(f"step {step}: success {summary['successes']}/{summary['episodes']} on random "
                          f"spawns, val loss {'-' if last_val is None else f'{last_val:.4f}'}")
                sys.stdout.flush()  # a piped stdout is block-buffered; progress should show now
                metrics["last_success"] = rate
                best = metrics["best_success"]
                if best is None or rate > best or (rate == best and last_val is not None and
                                                    last_val < (metrics["best_val_loss"] or float("inf"))):
                    metrics["best_success"] = rate
                    metrics["best_val_loss"] = last_val
                    metrics["best_step"] = step
                    improved = True
            if improved:
                save_checkpoint(out / BEST, checkpoint_dict(step))
            if step % train.checkpoint_every == 0 or step == train.steps:
                save_checkpoint(out / LATEST, checkpoint_dict(step))
                writer.flush()
            if train.keep_every and step % train.keep_every == 0:
                save_checkpoint(out / f"step_{step:06d}.pt", checkpoint_dict(step))
            bar.update(1)
            if train.max_minutes and time.perf_counter() - started > train.max_minutes * 60:
                if step % train.checkpoint_every:
                    save_checkpoint(out / LATEST, checkpoint_dict(step))
                bar.write(f"time budget of {train.max_minutes:g} min reached at step {step} of {train.steps}")
                break
            tick = time.perf_counter()  # validation, rollouts and checkpoints are not step time
    except KeyboardInterrupt:
        if dist.master and step > start_step:
            save_checkpoint(out / LATEST, checkpoint_dict(step))
        raise
    finally:
        bar.close()
        if writer is not None:
            writer.close()
        for env in eval_envs or ():
            env.close()
        train_set.close()

    if dist.master:
        if step == start_step and not (out / LATEST).exists():
            save_checkpoint(out / LATEST, checkpoint_dict(step))
        plot_history(history, out / "loss.png", title=f"{dataset.task}: {len(train_eps)} training episodes")
        print(f"trained to step {step}; checkpoints in {out} (latest.pt"
              f"{', best.pt' if (out / BEST).exists() else ''}), TensorBoard: tensorboard --logdir {out / 'tb'}")
    return metrics


def validation_loss(model, val_set, device: str, batch_size: int = 256) -> float:
    """Mean loss over a fixed subset of validation samples, in eval mode (z = posterior mean)."""
    import torch

    from act.data import collate

    indices = np.unique(np.linspace(0, len(val_set) - 1, min(len(val_set), VAL_SAMPLES)).astype(int))
    model.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            batch = {k: v.to(device) for k, v in collate(val_set.__getitems__(chunk)).items()}
            loss, _ = model(batch)
            total += loss.item() * len(chunk)
    return total / len(indices)


def evaluate(model, normalizer, dataset, envs, spawns, train: TrainConfig, inference: dict) -> dict:
    from act.policy import Policy
    from act.metrics import summarize
    from act.rollout import rollout

    if train.eval_temporal_ensemble is not None:
        inference = {"temporal_ensemble": train.eval_temporal_ensemble, "query_every": None}
    policy = Policy(model, normalizer, dataset.spec, **inference, device=next(model.parameters()).device)
    results = rollout(policy, dataset.task, spawns, max_steps=train.eval_max_steps, envs=envs)
    return summarize([r.to_dict() for r in results])


def plot_history(history: dict, path: Path, *, title: str = "") -> None:
    """Training and validation loss (log scale), and rollout success when there is any."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    if history["step"]:
        ax.plot(history["step"], history["loss"], label="train loss", color="tab:blue", alpha=0.8)
        ax.plot(history["step"], history["l1"], label="train L1", color="tab:cyan", alpha=0.6)
    if history["val_step"]:
        ax.plot(history["val_step"], history["val_loss"], "o-", label="val loss", color="tab:orange",
                markersize=3)
    if history["step"] and min(history["loss"] + history["val_loss"] or [1]) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    lines, labels = ax.get_legend_handles_labels()
    if history["eval_step"]:
        ax2 = ax.twinx()
        ax2.plot(history["eval_step"], history["success_rate"], "s-", color="tab:green",
                 label="success on random spawns")
        ax2.set_ylim(-0.02, 1.02)
        ax2.set_ylabel("success rate")
        more = ax2.get_legend_handles_labels()
        lines, labels = lines + more[0], labels + more[1]
    if lines:  # below the axes: curves fill the whole plot area at one time or another
        fig.legend(lines, labels, loc="outside lower center", ncol=len(lines))
    ax.set_title(title)
    tmp = path.with_name(f".{path.name}.partial.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())

"""Preparing an act-train run: read and check the episodes, build the model or resume it, start the loop.

:func:`run` is what `act-train` calls (the command line is :mod:`act.train`, the flags
:mod:`act.train_config`); the loop itself is :mod:`act.train_loop`.

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

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from act.config import ACTConfig
from act.data import (DataError, StateSpec, check_labels, check_spawn_diversity, load_dataset,
                      normalization_data, split_episodes)
from act.train_config import LEGACY_TRAIN_ARGS, RESUMABLE_CHANGES, TrainConfig
from teleop.errors import ToolkitError, one_line


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

    @classmethod
    def from_env(cls) -> "Distributed":
        """torchrun's RANK / LOCAL_RANK / WORLD_SIZE; one process without them."""
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or "RANK" not in os.environ:
            return cls()
        return cls(rank=int(os.environ["RANK"]), local_rank=int(os.environ.get("LOCAL_RANK", 0)),
                   world_size=int(os.environ["WORLD_SIZE"]))


@dataclass
class TrainingData:
    dataset: object  # act.data.Dataset
    train_eps: list
    val_eps: list  # held-out episodes with a label (a correction the person never drove has no sample)
    fingerprint: dict  # every episode with its seed and spawn, and which were held out


def load_training_data(train: TrainConfig, dist: Distributed) -> TrainingData:
    """Read, split and check the episodes (before torch is imported: a bad dataset is refused fast).

    Correction episodes get the loss weight --correction-weight; only their person-driven steps are
    labels (act.data.ChunkDataset)."""
    if train.observations == "vision":
        spec = StateSpec.vision()
    else:
        spec = StateSpec.parse(train.state_slices, qpos=train.qpos, relative=train.relative,
                               fine=train.fine_relative)
    dataset = load_dataset(train.data, spec=spec, cameras=train.camera_names, strict=train.strict,
                           drop_idle=train.drop_idle)
    if train.drop_idle is not False and dataset.idle_dropped and dist.master:
        kept = sum(e.num_steps for e in dataset.episodes)
        print(f"left out {dataset.idle_dropped} idle steps (operator pauses) of {kept + dataset.idle_dropped}"
              f"{'' if train.drop_idle else ' (human demos; --no-drop-idle keeps them)'}", flush=True)
    corrections = [e for e in dataset.episodes if e.is_correction]
    for e in corrections:
        e.weight, e.policy_weight, e.drop_before = (train.correction_weight, train.policy_weight,
                                                    train.drop_before_takeover)
    check_labels(dataset)
    if corrections and dist.master:
        steps = sum(e.num_steps for e in corrections)
        labels = sum(e.person_steps for e in corrections)
        policy = sum(int(e.label_rows().sum()) for e in corrections) - labels
        print(f"corrections: {len(corrections)} episodes, {labels} of {steps} steps driven by a person are labels "
              f"(weight {train.correction_weight})"
              + (f", and {policy} driven by the policy (weight {train.policy_weight})" if policy else "")
              + f"; {len(dataset.episodes) - len(corrections)} demo episodes", flush=True)
    if dataset.person_rows and dataset.scripted_rows and not train.camera_names and dist.master:
        # Mixed data: a state policy's recipe (CVAE, dropout, tie-break inference) follows who drove most of it.
        share = dataset.person_rows / (dataset.person_rows + dataset.scripted_rows)
        who = f"a person's (ACT's CVAE, dropout {ACTConfig.dropout})" if dataset.recorded_by_person else \
            "the scripted expert's (no CVAE, no dropout)"
        print(f"labels: {dataset.person_rows} steps driven by a person ({share:.0%}), {dataset.scripted_rows} by the "
              f"scripted expert: trained with {who} defaults; --vae/--no-vae and --dropout set them", flush=True)
    if not corrections and (train.correction_weight != 1.0 or train.drop_before_takeover or train.policy_weight):
        warnings.warn("--correction-weight, --policy-weight and --drop-before-takeover change nothing: --data "
                      "holds no correction episodes (recorded by `teleop correct`)")
    train_ids, val_ids = split_episodes(len(dataset.episodes), train.val_fraction, train.seed)
    train_eps = [dataset.episodes[i] for i in train_ids]
    val_eps = [dataset.episodes[i] for i in val_ids]
    if not any(e.label_rows().any() for e in train_eps):
        raise DataError(f"no labels in the {len(train_eps)} training episodes: they are corrections in which a "
                        f"person never took over (the episodes with labels were held out for validation); "
                        f"lower --val-fraction, change --seed or add demos")
    diversity = check_spawn_diversity(train_eps, dataset, allow_single_spawn=train.allow_single_spawn)
    if dist.master and diversity.names:
        print(f"training spawns: {diversity.distinct} distinct in {len(train_eps)} episodes; their hull encloses "
              f"{diversity.hull:.0%} of the spawn box (about that share of act-eval's random spawns lie inside it; "
              f"it reports success inside and outside)", flush=True)
    fingerprint = dataset.fingerprint()
    fingerprint["train_files"] = [e.path.name for e in train_eps]
    fingerprint["val_files"] = [e.path.name for e in val_eps]
    return TrainingData(dataset, train_eps, [e for e in val_eps if e.label_rows().any()], fingerprint)


def check_run_folder(train: TrainConfig) -> Path:
    out = Path(train.out)
    if train.resume and not (out / "latest.pt").is_file():
        raise ToolkitError(f"--resume: {out / 'latest.pt'} does not exist; is --out the folder of the run "
                           f"to continue? (drop --resume to start a new run)")
    if not train.resume and (out / "latest.pt").exists():
        raise ToolkitError(f"{out} already holds a run (latest.pt): pass --resume to continue it, or "
                           f"choose another --out")
    return out


def new_history() -> dict:
    return {"step": [], "loss": [], "l1": [], "kl": [], "val_step": [], "val_loss": [],
            "eval_step": [], "success_rate": []}


def run(train: TrainConfig, model_flags: dict) -> dict:
    """Train; returns the final metrics. Raises ToolkitError for anything the user can fix."""
    dist = Distributed.from_env()
    if not dist.master:
        warnings.simplefilter("ignore")  # the master reports data problems once
    data = load_training_data(train, dist)
    out = check_run_folder(train)

    import torch

    from act.checkpoint import LATEST, load_checkpoint
    from act.model import ACTPolicy, VisionDependencyError
    from act.normalize import Normalizer

    if train.threads:
        torch.set_num_threads(train.threads)
    if train.device == "cuda" and not torch.cuda.is_available():
        raise ToolkitError("--device cuda: no CUDA device is visible to torch; use --device cpu")
    device = f"cuda:{dist.local_rank}" if train.device == "cuda" else "cpu"
    normalizer = Normalizer.from_data(*normalization_data(data.train_eps, train.drop_before_takeover))
    first = data.train_eps[0]
    checkpoint = load_checkpoint(out / LATEST) if train.resume else None
    model_flags = train.resolve_model_flags(model_flags, None if checkpoint is None else checkpoint["config"],
                                            recorded_by_person=data.dataset.recorded_by_person)
    try:
        config = ACTConfig(state_dim=first.state.shape[1], action_dim=first.action.shape[1],
                           camera_names=train.camera_names, image_size=data.dataset.image_size or (128, 128),
                           **model_flags).validate()
    except ValueError as error:
        raise ToolkitError(f"model flags: {error}") from None
    torch.manual_seed(train.seed)
    try:
        model = ACTPolicy(config).to(device)
    except VisionDependencyError as error:
        raise ToolkitError(f"--cameras {train.cameras}: {error}") from None
    if train.backbone_weights and checkpoint is None:  # a resumed run has them in its checkpoint
        from act.backbone import load_pretrained

        load_pretrained(model.images.backbone, train.backbone_weights)
    optimizer = model.make_optimizer()

    start_step, history, metrics = 0, new_history(), {"best_val_loss": None, "best_success": None}
    if checkpoint is not None:
        check_resumable(checkpoint, config, train, data.fingerprint, out / LATEST)
        try:
            # With --ema, "model" is the average (what runs) and "train_model" the trained weights.
            model.load_state_dict(checkpoint.get("train_model", checkpoint["model"]))
            optimizer.load_state_dict(checkpoint["optimizer"])
        except (RuntimeError, ValueError, KeyError) as error:
            raise ToolkitError(f"{out / LATEST} does not fit this model "
                               f"({one_line(error)[:200]}); start a new --out") from None
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
        from act.weight_average import WeightAverage

        ema = WeightAverage(model, train.ema) if train.ema else None
        if ema is not None and checkpoint is not None:
            ema.model.load_state_dict(checkpoint["model"])
        from act.train_loop import TrainingLoop

        loop = TrainingLoop(train, dist, device, model, ema, optimizer, config, normalizer, data, out,
                            start_step=start_step, history=history, metrics=metrics)
        metrics = loop.run()
        if dist.enabled:
            # The master validates, chooses the inference and plots after the last step while the other ranks
            # are done: leave together, so no rank tears gloo down under another (seen once in eight runs as
            # a hang of the rank left behind).
            torch.distributed.barrier()
        return metrics
    finally:
        if dist.enabled:
            torch.distributed.destroy_process_group()


def check_resumable(checkpoint: dict, config: ACTConfig, train: TrainConfig, fingerprint: dict,
                    path: Path) -> None:
    """Refuse a --resume whose model flags, training flags or data differ from the checkpoint's."""
    try:  # as the checkpoint's network is rebuilt: fields added since it was written take their old values
        saved = ACTConfig.from_dict(checkpoint["config"]).to_dict()
    except (ValueError, KeyError, TypeError) as error:
        raise ToolkitError(f"--resume: {path} holds a model config this version cannot read ({one_line(error)[:160]}); "
                           f"start a new --out") from None
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

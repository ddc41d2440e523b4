"""The act-train loop, as the steps of training: gradient step, log, validate, roll out, checkpoint.

:class:`TrainingLoop` is built by :func:`act.train_setup.run` with the model, optimizer, data and
the state to start from (a fresh run or a resumed one). Its :meth:`~TrainingLoop.run` takes, for
each batch, one :meth:`~TrainingLoop.gradient_step` (loss, backward, learning rate, optimizer,
weight average), then on the master process :meth:`~TrainingLoop.log_losses`,
:meth:`~TrainingLoop.validate`, :meth:`~TrainingLoop.evaluate_rollouts` and
:meth:`~TrainingLoop.save_checkpoints`, each when it is due.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from act.config import ACTConfig, default_inference, evaluation_horizon
from act.train_config import FINAL_LR_FRACTION, TrainConfig
from teleop.env import MAX_STEPS
from teleop.errors import ToolkitError

VAL_SAMPLES = 2048  # a fixed, evenly spread subset keeps validation cheap and deterministic


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


class TrainingLoop:
    """One run's training from ``start_step`` to ``train.steps`` (or the time budget).

    ``dist``: the process's place under DDP (:class:`act.train_setup.Distributed`); ``data``: the
    episodes (:class:`act.train_setup.TrainingData`); ``ema``: a :class:`act.weight_average.WeightAverage`
    or None. Only the master process logs, validates, rolls out and writes checkpoints; under DDP the other
    ranks take the gradient steps alone.
    """

    def __init__(self, train: TrainConfig, dist, device: str, model, ema, optimizer,
                 config: ACTConfig, normalizer, data, out: Path, *, start_step: int,
                 history: dict, metrics: dict):
        import torch

        from act.data import ChunkDataset, StepBatches, collate

        self.train, self.dist, self.device, self.config, self.normalizer = train, dist, device, config, normalizer
        self.optimizer, self.ema, self.data, self.out = optimizer, ema, data, out
        self.start_step, self.history, self.metrics = start_step, history, metrics
        dataset = data.dataset
        # What act-eval and the rollouts run unless told otherwise, chosen by who recorded the demos.
        self.inference = default_inference(dataset.recorded_by_person, config.chunk_size)
        # How long act-eval and the rollouts give an episode, set by the pace of the demos.
        self.horizon = evaluation_horizon(dataset.longest_recorded)
        self.eval_max_steps = train.eval_max_steps or self.horizon
        self.raw_model = model
        self.model = model  # what takes the gradient steps (DDP-wrapped when distributed)
        if dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            self.model = DistributedDataParallel(
                model, device_ids=[dist.local_rank] if train.device == "cuda" else None)
        self.run_model = model if ema is None else ema.model  # what validation, rollouts and act-eval use

        memory = train.image_memory_gb or None
        self.train_set = ChunkDataset(data.train_eps, config.chunk_size, normalizer, cameras=config.camera_names,
                                      image_memory_gb=memory)
        self.val_set = (ChunkDataset(data.val_eps, config.chunk_size, normalizer, cameras=config.camera_names,
                                     image_memory_gb=memory)
                        if data.val_eps else None)
        batches = StepBatches(len(self.train_set), train.batch_size, seed=train.seed, rank=dist.rank,
                              start_step=start_step, stop_step=train.steps)
        self.loader = torch.utils.data.DataLoader(self.train_set, batch_sampler=batches, collate_fn=collate,
                                                  num_workers=train.workers, persistent_workers=False)
        self.writer = None
        self.eval_envs = self.eval_spawns = None
        self.last_val = metrics.get("last_val_loss")
        self._reset_window()

    # ---- the steps of training -------------------------------------------------------------
    def run(self) -> dict:
        from tqdm import tqdm

        from act.checkpoint import BEST, LATEST

        train, dist, out = self.train, self.dist, self.out
        if dist.master:
            self._open_logs_and_rollouts()
            if self.horizon > MAX_STEPS:  # demos slower than MetaWorld's clock: say what evaluation allows
                print(f"evaluation horizon {self.horizon} steps (covers the longest training demo, "
                      f"{self.data.dataset.longest_recorded} steps; MetaWorld's is {MAX_STEPS})", flush=True)
        bar = tqdm(total=train.steps, initial=self.start_step, disable=not (train.progress and dist.master),
                   dynamic_ncols=True, desc="act-train", unit="step")
        step = self.start_step
        self.model.train()
        tick = started = time.perf_counter()
        try:
            for batch in self.loader:
                self.data_time += time.perf_counter() - tick
                info = self.gradient_step(batch, step)
                step += 1
                self._accumulate(info, time.perf_counter() - tick)
                if not dist.master:
                    tick = time.perf_counter()
                    continue
                if step % train.log_every == 0 or step == train.steps:
                    self.log_losses(step, bar)
                improved = self.val_set is not None and self._due(step, train.val_every) and self.validate(step)
                if train.eval_every and self._due(step, train.eval_every):
                    improved = self.evaluate_rollouts(step, bar) or improved
                self.save_checkpoints(step, improved)
                bar.update(1)
                if train.max_minutes and time.perf_counter() - started > train.max_minutes * 60:
                    if step % train.checkpoint_every:
                        self.save(out / LATEST, step)
                    bar.write(f"time budget of {train.max_minutes:g} min reached at step {step} of {train.steps}")
                    break
                tick = time.perf_counter()  # validation, rollouts and checkpoints are not step time
        except KeyboardInterrupt:
            if dist.master and step > self.start_step:
                self.save(out / LATEST, step)
            raise
        finally:
            bar.close()
            self._close()

        if dist.master:
            if step == self.start_step and not (out / LATEST).exists():
                self.save(out / LATEST, step)
            if train.choose_inference and step > self.start_step:
                self.choose_inference(step)
            plot_history(self.history, out / "loss.png",
                         title=f"{self.data.dataset.task}: {len(self.data.train_eps)} training episodes")
            print(f"trained to step {step}; checkpoints in {out} (latest.pt"
                  f"{', best.pt' if (out / BEST).exists() else ''}), TensorBoard: tensorboard --logdir {out / 'tb'}")
        return self.metrics

    def gradient_step(self, batch: dict, step: int) -> dict:
        """Loss, backward, learning rate, optimizer step and weight average for the ``step``-th batch."""
        import torch

        train = self.train
        torch.manual_seed(step_seed(train.seed, step, self.dist.rank))
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        if train.image_shift and "images" in batch:
            batch["images"] = random_shift(batch["images"], train.image_shift)
        if train.state_noise:
            batch["state"] = batch["state"] + train.state_noise * torch.randn_like(batch["state"])
        loss, info = self.model(batch)
        if not math.isfinite(info["loss"]):
            raise ToolkitError(f"the loss became {info['loss']} at step {step}; lower --lr "
                               f"(now {self.config.lr}) or check the data")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        scale = lr_scale(train, step)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * scale
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(step)
        return info

    def log_losses(self, step: int, bar) -> None:
        """The mean losses since the last log, to the history, TensorBoard and the progress bar."""
        counted, writer = self.counted, self.writer
        means = {k: v / counted for k, v in self.sums.items()}
        self.history["step"].append(step)
        for k, v in means.items():
            self.history[k].append(v)
            writer.add_scalar(f"losses/{'train' if k == 'loss' else k}", v, step)
        writer.add_scalar("optim/lr", self.optimizer.param_groups[0]["lr"], step)
        writer.add_scalar("perf/steps_per_s", counted / max(self.step_time, 1e-9), step)
        writer.add_scalar("perf/data_fraction", self.data_time / max(self.step_time, 1e-9), step)
        last_val = self.last_val
        shown = {"loss": f"{means['loss']:.3f}", "l1": f"{means['l1']:.3f}"}
        if self.config.vae:  # without the CVAE the KL is always 0
            shown["kl"] = f"{means['kl']:.4f}"
        shown["val"] = "-" if last_val is None else f"{last_val:.3f}"
        bar.set_postfix(shown, refresh=False)
        self._reset_window()

    def validate(self, step: int) -> bool:
        """The validation loss; True when it is the best so far and rollouts do not choose best.pt."""
        metrics = self.metrics
        self.last_val = validation_loss(self.run_model, self.val_set, self.device)
        self.model.train()
        metrics["last_val_loss"] = self.last_val
        self.history["val_step"].append(step)
        self.history["val_loss"].append(self.last_val)
        self.writer.add_scalar("losses/val", self.last_val, step)
        if self.train.eval_every or (metrics["best_val_loss"] is not None
                                     and self.last_val >= metrics["best_val_loss"]):
            return False
        metrics["best_val_loss"] = self.last_val
        metrics["best_step"] = step
        return True

    def evaluate_rollouts(self, step: int, bar) -> bool:
        """Success on random spawns; True when it is the best so far (ties: the lower validation loss)."""
        dataset, metrics, last_val = self.data.dataset, self.metrics, self.last_val
        summary = evaluate(self.run_model, self.normalizer, dataset, self.eval_envs, self.eval_spawns, self.train,
                           self.inference, max_steps=self.eval_max_steps)
        self.model.train()
        rate = summary["success_rate"]
        self.history["eval_step"].append(step)
        self.history["success_rate"].append(rate)
        self.writer.add_scalar("eval/success_rate", rate, step)
        if summary["mean_final_obj_to_target"] is not None:
            self.writer.add_scalar("eval/final_obj_to_target", summary["mean_final_obj_to_target"], step)
        bar.write(f"step {step}: success {summary['successes']}/{summary['episodes']} on random spawns of up "
                  f"to {self.eval_max_steps} steps, val loss {'-' if last_val is None else f'{last_val:.4f}'}")
        sys.stdout.flush()  # a piped stdout is block-buffered; progress should show now
        metrics["last_success"] = rate
        best = metrics["best_success"]
        if best is None or rate > best or (rate == best and last_val is not None and
                                            last_val < (metrics["best_val_loss"] or float("inf"))):
            metrics["best_success"] = rate
            metrics["best_val_loss"] = last_val
            metrics["best_step"] = step
            return True
        return False

    def save_checkpoints(self, step: int, improved: bool) -> None:
        from act.checkpoint import BEST, LATEST

        train, out = self.train, self.out
        if improved:
            self.save(out / BEST, step)
        if step % train.checkpoint_every == 0 or step == train.steps:
            self.save(out / LATEST, step)
            self.writer.flush()
        if train.keep_every and step % train.keep_every == 0:
            self.save(out / f"step_{step:06d}.pt", step)

    def choose_inference(self, step: int) -> None:
        """Store in the checkpoint act-eval opens the inference that succeeds more often on held-out
        spawns (act/inference_choice.py)."""
        from act.checkpoint import open_checkpoint
        from act.inference_choice import (choose_inference, short_run_advice, store_choice, summary_line,
                                          weak_run_warning)

        dataset, train = self.data.dataset, self.train
        path, checkpoint = open_checkpoint(self.out)
        print(f"choosing the inference: {train.choose_inference} held-out spawns per candidate, "
              f"up to {self.horizon} steps each", flush=True)
        choice = choose_inference(checkpoint, dataset.task, dataset.spawn_low, dataset.spawn_high,
                                  episodes=train.choose_inference, max_steps=self.horizon,
                                  training_seeds=[e.seed for e in dataset.episodes], default=self.inference)
        store_choice(path, choice)
        self.metrics["inference_choice"] = choice
        print(f"{summary_line(choice)} (stored in {path.name})", flush=True)
        weak = weak_run_warning(choice)
        if weak:
            warnings.warn(weak, stacklevel=2)
        advice = short_run_advice(choice, len(dataset.episodes), str(self.out), step)
        if advice:
            print(advice, flush=True)

    # ---- helpers ---------------------------------------------------------------------------
    def save(self, path: Path, step: int) -> None:
        from act.checkpoint import save_checkpoint

        save_checkpoint(path, self.checkpoint_dict(step))

    def checkpoint_dict(self, step: int) -> dict:
        """The checkpoint: a plain dict (weights as CPU tensors) that act-eval rebuilds the policy from."""
        def weights(module) -> dict:
            return {k: v.detach().cpu() for k, v in module.state_dict().items()}

        train, dist = self.train, self.dist
        extra = {} if self.ema is None else {"train_model": weights(self.raw_model)}
        return {
            **extra,
            "format": "act-checkpoint/1",
            "model": weights(self.run_model),
            "optimizer": self.optimizer.state_dict(),
            "step": step,
            "config": self.config.to_dict(),
            "normalizer": self.normalizer.to_dict(),
            "state_spec": self.data.dataset.spec.to_dict(),
            "inference": self.inference,
            "horizon": self.horizon,
            "train_args": train.to_dict(),
            "dataset": self.data.fingerprint,
            "rng": {"scheme": "torch.manual_seed(step_seed(seed, step, rank)) each step; batches "
                              "from act.data.step_indices", "seed": train.seed,
                    "world_size": dist.world_size},
            "metrics": dict(self.metrics),
            "history": self.history,
        }

    def _due(self, step: int, every: int) -> bool:
        return step % every == 0 or step == self.train.steps

    def _accumulate(self, info: dict, seconds: float) -> None:
        for k in self.sums:
            self.sums[k] += info[k]
        self.counted += 1
        self.step_time += seconds

    def _reset_window(self) -> None:
        """Start a new logging window: loss sums and the time split between data and steps."""
        self.sums = {"loss": 0.0, "l1": 0.0, "kl": 0.0}
        self.counted = 0
        self.data_time = self.step_time = 0.0

    def _open_logs_and_rollouts(self) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops the events a killed run logged after its last checkpoint.
        self.writer = SummaryWriter(str(self.out / "tb"), purge_step=self.start_step or None)
        train, dataset = self.train, self.data.dataset
        if train.eval_every:
            from act.rollout import evaluation_spawns
            from teleop.env import TaskEnv

            self.eval_spawns = evaluation_spawns(dataset.spawn_low, dataset.spawn_high, train.eval_episodes,
                                                 training_seeds=[e.seed for e in dataset.episodes])
            self.eval_envs = [TaskEnv(dataset.task, cameras=self.config.camera_names,
                                      max_steps=self.eval_max_steps)
                              for _ in range(min(10, train.eval_episodes))]

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        for env in self.eval_envs or ():
            env.close()
        self.train_set.close()


def random_shift(images, pad: int):
    """Shift each sample's images (B, N, 3, H, W) by up to ``pad`` pixels in x and y, the border repeated
    (DrQ's augmentation; one shift per sample, the same for all its cameras), on the whole batch in torch."""
    import torch
    import torch.nn.functional as F

    b, n, c, h, w = images.shape
    padded = F.pad(images.reshape(b, n * c, h, w), (pad, pad, pad, pad), mode="replicate")
    dy, dx = torch.randint(0, 2 * pad + 1, (2, b), device=images.device)
    rows = (dy[:, None] + torch.arange(h, device=images.device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, None, :]  # (B, 1, 1, W)
    batch = torch.arange(b, device=images.device)[:, None, None, None]
    channels = torch.arange(n * c, device=images.device)[None, :, None, None]
    return padded[batch, channels, rows, cols].reshape(b, n, c, h, w)


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


def evaluate(model, normalizer, dataset, envs, spawns, train: TrainConfig, inference: dict, *,
             max_steps: int) -> dict:
    from act.metrics import summarize
    from act.policy import Policy
    from act.rollout import rollout

    if train.eval_temporal_ensemble is not None:
        inference = {"temporal_ensemble": train.eval_temporal_ensemble, "query_every": None}
    policy = Policy(model, normalizer, dataset.spec, **inference, device=next(model.parameters()).device)
    results = rollout(policy, dataset.task, spawns, max_steps=max_steps, envs=envs)
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

"""ACT checkpoints: a plain dict, written atomically, loaded without executing code.

Keys (CHECKPOINT_KEYS):
    format       "act-checkpoint/1"
    model        state dict of the unwrapped ACTPolicy (no DDP "module." prefixes): the weights that run
                 (with act-train --ema, the moving average of the weights)
    optimizer    AdamW state dict
    step         optimizer steps taken
    config       ACTConfig.to_dict(): rebuilds the network from the checkpoint alone
    normalizer   Normalizer.to_dict()
    state_spec   StateSpec.to_dict(): which observation columns (and qpos) the policy reads
    train_args   the TrainConfig of the run, as a dict
    dataset      fingerprint: task, spawn box, per episode file/seed/steps/rand_vec/object_init_pos/spawn_strategy, split
    rng          random state needed for an exact resume (see train.py: every step's randomness
                 derives from (seed, step, rank), so this holds the seed and the world size)
    metrics      best and last validation loss / rollout success
    history      logged curves (lists of numbers) so a resumed run's plot covers the whole run

Optional: train_model, the trained weights themselves when "model" is their average (--ema); a resume
continues from them. inference, how the policy turns chunks into actions unless act-eval is told
otherwise ({"temporal_ensemble": k or None, "query_every": n or None}, act.config.default_inference);
without it, act.config.LEGACY_INFERENCE. horizon, the step limit act-eval gives an episode unless told
otherwise (an int: 1.5x the longest training demo, at least 500; act.config.evaluation_horizon); without
it, MetaWorld's 500.

Everything is a dict, list, str, int, float, bool, None or tensor, so `torch.load(weights_only=True)`
reads it; anything else in a file (a pickled object, a __reduce__ payload) is refused before it runs.
"""

from __future__ import annotations

import os
from pathlib import Path

from teleop.atomic import replacing
from teleop.errors import ToolkitError

FORMAT = "act-checkpoint/1"
CHECKPOINT_KEYS = ("format", "model", "optimizer", "step", "config", "normalizer", "state_spec",
                   "train_args", "dataset", "rng", "metrics", "history")
LATEST, BEST = "latest.pt", "best.pt"


class CheckpointError(ToolkitError):
    """A checkpoint that is missing, damaged, unsafe or does not fit the run."""


def _check_plain(value, where: str = "checkpoint") -> None:
    import torch

    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"{where}: key {key!r} is a {type(key).__name__}, not str/int")
            _check_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif not (value is None or isinstance(value, (str, int, float, bool, torch.Tensor))):
        raise TypeError(f"{where} is a {type(value).__name__}: checkpoints hold only plain types "
                        f"so that loading them never runs code")


def save_checkpoint(path: str | os.PathLike, checkpoint: dict) -> Path:
    """Write atomically: temporary file in the same folder, fsync, rename (a kill mid-write leaves
    the previous checkpoint intact)."""
    import torch

    path = Path(path)
    missing = [k for k in CHECKPOINT_KEYS if k not in checkpoint]
    if missing:
        raise ValueError(f"checkpoint lacks keys {missing}")
    _check_plain(checkpoint)
    try:
        with replacing(path) as tmp:
            torch.save(checkpoint, tmp)
    except OSError as error:
        raise CheckpointError(f"cannot write checkpoint {path}: {error.strerror or error}; "
                              f"free disk space or choose another --out") from error
    return path


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint with weights_only=True (no code runs) and check its keys."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass a .pt file or a run folder "
                              f"written by act-train")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # weights_only refuses any global it does not know: a pickled object, or a payload.
        first = str(error).strip().splitlines()[0] if str(error).strip() else "unpickling refused"
        raise CheckpointError(f"{path} is not a plain act checkpoint and was NOT loaded (it holds "
                              f"objects that loading would have to execute: {first[:160]})") from None
    except Exception as error:  # noqa: BLE001 - torch raises RuntimeError/EOFError/... for damage
        raise CheckpointError(f"{path} is damaged or not a checkpoint ({type(error).__name__}); "
                              f"use another checkpoint (latest.pt / best.pt) or retrain") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an {FORMAT} checkpoint; was it written by act-train?")
    missing = [k for k in CHECKPOINT_KEYS if k not in checkpoint]
    if missing:
        raise CheckpointError(f"{path} lacks keys {missing}; it is damaged or from another version")
    return checkpoint


def open_checkpoint(path_or_run_dir: str | os.PathLike) -> tuple[Path, dict]:
    """(path, checkpoint): a .pt file as given; a run folder -> the checkpoint to run: its best.pt when
    the run picked it by rollout success (act-train --eval-every), else its latest.pt (the end of training).

    The lowest validation loss does not pick the better policy: on 50 human-like pick-place demos the
    validation loss bottomed out at step 700 (68/100 unseen spawns) while step 3000 scored 87/100, and
    on four scripted runs latest.pt scored 375/400 against best.pt's 371 (BENCHMARKS.md, "Inference").
    best.pt stays in the folder; pass the file to run it."""
    path = Path(path_or_run_dir)
    if path.is_dir():
        best, latest = path / BEST, path / LATEST
        if best.is_file():
            checkpoint = load_checkpoint(best)
            if not latest.is_file() or int(checkpoint["train_args"].get("eval_every") or 0) > 0:
                return best, checkpoint
        if latest.is_file():
            return latest, load_checkpoint(latest)
        raise CheckpointError(f"{path} holds no {BEST} or {LATEST}; is it an act-train --out folder?")
    return path, load_checkpoint(path)

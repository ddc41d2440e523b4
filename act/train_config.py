"""What an act-train run is asked to do: :class:`TrainConfig`, one field per flag, each with its help.

Kept apart from the training (:mod:`act.train_setup`, :mod:`act.train_loop`) and the command line
(:mod:`act.train`), so a test, a benchmark and a resumed run can build and check a configuration
without importing torch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from teleop.env import LONGEST_STEPS
from teleop.errors import ToolkitError

# Fields of ACTConfig that come from the data, not from flags.
DATA_DEFINED = ("state_dim", "action_dim", "camera_names", "image_size")
# TrainConfig fields a resumed run may change without changing what it computes.
RESUMABLE_CHANGES = ("steps", "resume", "device", "threads", "workers", "progress", "strict",
                     "log_every", "val_every", "checkpoint_every", "keep_every", "eval_every",
                     "eval_episodes", "eval_max_steps", "eval_temporal_ensemble", "data", "out",
                     "allow_single_spawn", "max_minutes", "choose_inference", "image_memory_gb",
                     "backbone_weights")
# What a checkpoint written before a TrainConfig field existed was trained with.
LEGACY_TRAIN_ARGS = {"lr_schedule": "constant", "warmup_steps": 0, "state_noise": 0.0, "relative": False,
                     "fine_relative": 0.0, "drop_idle": False, "ema": 0.0, "correction_weight": 1.0,
                     "drop_before_takeover": 0, "policy_weight": 0.0, "observations": "state", "image_shift": 0,
                     "backbone_weights": ""}
LR_SCHEDULES = ("constant", "cosine")
# Model flags whose default depends on other flags (resolve_model_flags), with what the help says of it.
AUTO_MODEL_FLAGS = {
    "lr": "6e-4 for a state policy (3000 steps at 3e-4 left it short of converged: reach-wall-v3 69 -> 80 of 100, "
          "basketball-v3 71 -> 85 at 20 demos; BENCHMARKS.md, \"Learning rate\"), 3e-4 with cameras (the camera "
          "recipe's).",
    "backbone": "small with --device cpu (a training step ~4x faster than resnet18 on a CPU; BENCHMARKS.md, \"Policies "
                "that see\"), resnet18 with --device cuda (ACT's encoder, the one ImageNet weights fit).",
    "lr_backbone": "--lr for a backbone trained from scratch; 1e-5 (ACT's, for a pretrained ResNet) with "
                   "--backbone-weights.",
    "vae": "off for a state policy on the scripted expert's demos (one plan per state: the latent collapses to the "
           "prior and only adds noise in training; BENCHMARKS.md, \"The CVAE\"), on (ACT's) when a person drove "
           "most of the labels (their demos, or their corrections outweighing the expert's demos) and for camera "
           "policies.",
    "dropout": "0 for a state policy on the scripted expert's demos (labels without noise, which the network at 0.1 "
               "does not fit: over the 50 tasks at 20 demos 4833 against 4820 successes of 5000 and 42 against 41 "
               "of the 44 mastered tasks at 90 of 100 or more; BENCHMARKS.md, \"Dropout without the CVAE\"), "
               "0.1 (ACT's) when a person drove most of the labels and for camera policies.",
}
PRETRAINED_LR_BACKBONE = 1e-5
STATE_LR = 6e-4
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
    """Comma-separated cameras whose recorded images the policy sees, e.g. corner2,gripperPOV. Empty: state
    only."""
    backbone_weights: str = ""
    """With --cameras and --backbone resnet18: start the image backbone from these weights, a torchvision
    resnet18 state dict saved with torch.save (e.g. ImageNet's), or `torchvision` for torchvision's ImageNet
    weights where torchvision imports. Empty: random weights. With pretrained weights --lr-backbone defaults
    to ACT's 1e-5; trained from scratch, to --lr."""
    image_memory_gb: float = 4.0
    """With --cameras: decode the images the training steps use once, into memory as uint8, up to this many
    GB (past it act-train refuses and says the sizes); 0: read them from the episode files every batch."""
    image_shift: int = 4
    """With --cameras: shift each training sample's images by up to this many pixels (random, the border
    repeated; DrQ's augmentation, done on the batch in torch). 0: off. Measured on 50 pick-place demos, two
    96x96 cameras, 25 minutes: 98/100 unseen spawns with 4 pixels, 95/100 without (50/50 held-out spawns
    with either inference against 48 and 49 of 50; BENCHMARKS.md, "Policies that see")."""
    observations: str = "state"
    """What the policy sees. state: MetaWorld's 39 floats (the object's and the goal's exact positions; a
    simulation-only stand-in). vision: the --cameras images, the robot's own state (hand position, finger
    opening, 9 joint positions) and the goal position, never an object's pose (act.data.StateSpec.vision;
    --state-slices, --qpos and --relative do not apply)."""
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
    fine_relative: float = 0.0
    """With --relative: also append tanh(v / M) of those 9 floats, M in metres (0: not), the vectors at the
    centimetre scale where a grasp or a reach is decided."""
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
    eval_max_steps: int | None = None
    """Step limit of an evaluation rollout. Unset: the horizon the checkpoint stores for act-eval, 1.5x the
    longest training demo and at least MetaWorld's 500 (act.config.evaluation_horizon): a policy trained
    on slow demos acts at their pace."""
    eval_temporal_ensemble: float | None = None
    """Temporal-ensembling weight k of evaluation rollouts (0: plain mean of the live chunks). Unset: the
    inference the checkpoint stores for act-eval (open-loop chunks of 5 for scripted demos, ensembling
    with k = -0.1 for demos recorded by a person; act.config.default_inference)."""
    choose_inference: int = 50
    """After training, run the checkpoint act-eval opens with each inference (open-loop chunks of 5,
    ensembling k = -0.1) on this many held-out spawns (seeds 2,000,000+) and store the one that succeeds
    more often; a tie keeps the default for who recorded the demos (act/inference_choice.py). 0: keep
    the default without rollouts."""
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
    correction_weight: float = 1.0
    """Loss weight of a sample from a correction episode (recorded by `teleop correct`, HG-DAgger: the policy
    drives, a person takes over) relative to a demo sample. Of a correction episode only the steps a person
    drove are labels: a sample at each of them, and the policy-driven steps of its chunk are left out of the
    loss like the padding past the end. Demos (any --data folder may mix both) keep every step. The
    validation loss is weighted alike."""
    policy_weight: float = 0.0
    """Loss weight of the steps the policy drove in a correction episode (Sirius keeps them as labels:
    the person watched them and let them be). 0: they are not labels (HG-DAgger)."""
    drop_before_takeover: int = 0
    """The policy's steps among the N recorded steps just before each takeover (its mistakes, which made the
    person take over; Sirius drops about 15) are never labels, even with --policy-weight, and are left out
    of the normalization statistics (steps a person drove, after an earlier takeover, stay in)."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def resolve_model_flags(self, model_flags: dict, saved: dict | None = None,
                            recorded_by_person: bool = True) -> dict:
        """``model_flags`` with the AUTO_MODEL_FLAGS left unset (None or absent) decided: from ``saved`` (the
        config of the run being resumed) when given, else from this run's cameras, device and weights and
        from who recorded the data. A state-only policy has no backbone: of these it decides --lr,
        --vae and --dropout."""
        flags = dict(model_flags)
        for name in AUTO_MODEL_FLAGS:
            if flags.get(name) is None:
                flags.pop(name, None)
                if saved is not None and name in saved:
                    flags[name] = saved[name]
        from act.config import ACTConfig

        if saved is not None:
            flags.setdefault("vae", True)  # a run from before the choice trained the CVAE
        # ACT's CVAE and dropout for a person's demos (several plans, noisy labels) and for cameras; neither
        # for the scripted expert's state demos (one plan per state, labels without noise).
        act_recipe = bool(recorded_by_person or self.camera_names)
        flags.setdefault("vae", act_recipe)
        flags.setdefault("dropout", ACTConfig.dropout if act_recipe else 0.0)
        flags.setdefault("lr", ACTConfig.lr if self.camera_names else STATE_LR)
        if not self.camera_names:
            return flags
        flags.setdefault("backbone", "resnet18" if self.device == "cuda" else "small")
        if self.backbone_weights:
            flags.setdefault("lr_backbone", PRETRAINED_LR_BACKBONE)
        else:
            flags.setdefault("lr_backbone", flags["lr"])
        return flags

    @property
    def camera_names(self) -> tuple[str, ...]:
        return tuple(c for c in self.cameras.split(",") if c)

    def validate(self) -> "TrainConfig":
        if not self.data:
            raise ToolkitError("--data: pass at least one folder of episodes")
        if not self.out:
            raise ToolkitError("--out: name the run folder, e.g. --out runs/pp50")
        for name in ("steps", "batch_size", "val_every", "checkpoint_every", "log_every", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ToolkitError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be >= 1")
        if self.eval_max_steps is not None and not 1 <= self.eval_max_steps <= LONGEST_STEPS:
            raise ToolkitError(f"--eval-max-steps {self.eval_max_steps}: must be in 1..{LONGEST_STEPS} (the longest "
                               f"episode a TaskEnv runs); leave it out for the horizon the data calls for")
        for name in ("eval_every", "threads", "workers", "seed", "keep_every", "choose_inference"):
            if getattr(self, name) < 0:
                raise ToolkitError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be >= 0")
        if not 0 <= self.ema < 1:
            raise ToolkitError(f"--ema {self.ema}: must be >= 0 and below 1 (e.g. 0.995; 0: off)")
        if not (math.isfinite(self.fine_relative) and self.fine_relative >= 0):
            raise ToolkitError(f"--fine-relative {self.fine_relative}: must be a finite number of metres >= 0 (0: off)")
        if self.fine_relative and (not self.relative or self.observations == "vision"):
            raise ToolkitError("--fine-relative refines the relative vectors, which only --relative (the default) "
                               "with --observations state feeds the policy; drop one of them")
        if not (math.isfinite(self.state_noise) and self.state_noise >= 0):
            raise ToolkitError(f"--state-noise {self.state_noise}: must be a finite number >= 0")
        if self.drop_before_takeover < 0:
            raise ToolkitError(f"--drop-before-takeover {self.drop_before_takeover}: must be >= 0 (e.g. 15; "
                               f"0: every step of a correction episode counts in the normalization statistics)")
        if not (math.isfinite(self.policy_weight) and self.policy_weight >= 0):
            raise ToolkitError(f"--policy-weight {self.policy_weight}: must be a finite number >= 0 "
                               f"(0: the policy's own steps of a correction are not labels)")
        if not (math.isfinite(self.correction_weight) and self.correction_weight > 0):
            raise ToolkitError(f"--correction-weight {self.correction_weight}: must be a finite number > 0 "
                               f"(1: a corrected step counts as much as a demo step)")
        if not (math.isfinite(self.image_memory_gb) and self.image_memory_gb >= 0):
            raise ToolkitError(f"--image-memory-gb {self.image_memory_gb}: must be >= 0 (0: read images from the "
                               f"files every batch)")
        if self.image_shift < 0:
            raise ToolkitError(f"--image-shift {self.image_shift}: must be >= 0 pixels (e.g. 4; 0: off)")
        if self.backbone_weights and not self.camera_names:
            raise ToolkitError("--backbone-weights needs --cameras (a state-only policy has no image backbone)")
        if self.observations not in ("state", "vision"):
            raise ToolkitError(f"--observations {self.observations!r}: use state (MetaWorld's 39 floats) or vision "
                               f"(camera images + the robot's own state + the goal)")
        if self.observations == "vision":
            if not self.camera_names:
                raise ToolkitError("--observations vision needs --cameras (e.g. corner2,gripperPOV); a dataset "
                                   "without images gets them with `teleop render DATASET --cameras corner2`")
            if self.state_slices:
                raise ToolkitError("--state-slices does not apply to --observations vision (it fixes what the "
                                   "policy sees: act.data.StateSpec.vision); drop one of them")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ToolkitError(f"--lr-schedule {self.lr_schedule!r}: use one of {', '.join(LR_SCHEDULES)}")
        if self.warmup_steps < 0 or self.warmup_steps >= self.steps:
            raise ToolkitError(f"--warmup-steps {self.warmup_steps}: must be >= 0 and below --steps {self.steps}")
        if self.device not in ("cpu", "cuda"):
            raise ToolkitError(f"--device {self.device!r}: use cpu or cuda")
        return self

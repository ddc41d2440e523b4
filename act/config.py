"""Configuration of an ACT policy: the observation/action spec, the network's size and the optimizer.

The defaults are sized for a 2-core CPU and a 39-float MetaWorld state, and chosen from measurements
(BENCHMARKS.md, "ACT recipe"): against the first defaults (feed-forward 512, 4 encoder layers, 2 CVAE
layers, lr 1e-4: 1.48M parameters, ~180 ms a step) this network (0.62M, ~75 ms a step alone then, 43-58
ms since the step was made faster, BENCHMARKS.md "Training step") at lr 3e-4 took 20 pick-place-v3 demos
from 85% to 94-96% and 10 demos from 42% to 80%, in less training time.
A checkpoint stores `to_dict()`; `ACTConfig.from_dict` rebuilds the same network from it alone.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

DEFAULT_TEMPORAL_ENSEMBLE = -0.1
"""Temporal-ensembling weight k (negative: the newer chunks weigh more; why in act/ensemble.py)."""
DEFAULT_QUERY_EVERY = 5
"""Open-loop chunk length: query the policy every n steps and run the chunk's first n actions."""
BACKBONES = ("resnet18", "small")
"""The values of ACTConfig.backbone (act/backbone.py builds them)."""
LEGACY_BACKBONE = "resnet18"
"""The image backbone of every checkpoint written before ACTConfig had a backbone field."""


def default_inference(recorded_by_person: bool, chunk_size: int) -> dict:
    """How a policy turns its chunks into actions unless told otherwise, as Policy's keyword arguments.

    act-train stores this in the checkpoint, chosen by who drove most of the labels (Dataset.recorded_by_person),
    as it chooses the CVAE and dropout; act-eval and training rollouts use it. Measured on held-out spawns
    (seeds 2,000,000+, never the reported ones; BENCHMARKS.md, "Stalls"):

    - The scripted expert's demos: open-loop chunks of 5 steps. Its labels are a deterministic plan;
      running 5 of its steps before asking again commits to that plan where the state stops changing
      (the peg-insert-side hand stalls on the peg, and a policy asked every step moves the lift "a few
      steps later" each time): peg-insert-side-v3 at 20 demos 190/200 against 177/200 for ensembling
      (k = -0.1), 834 against 820 of 900 over eight scripted cells.
    - Demos recorded by a person (any device but the scripted expert): temporal ensembling, k = -0.1,
      which averages the predictions of several chunks, and with them the hesitations and corrections
      the labels carry. Human-like pick-place-v3 at 50 demos: 187/200 against 166/200 for chunks of 5.
      On three other human-like tasks chunks did as well or better (push 75 against 64, door 93/92,
      reach 81/79 of 100), so for a person's data this is the safer choice rather than a clear win;
      `act-eval --query-every 5` runs such a policy the other way.
    """
    if recorded_by_person:
        return {"temporal_ensemble": DEFAULT_TEMPORAL_ENSEMBLE, "query_every": None}
    return {"temporal_ensemble": None, "query_every": min(DEFAULT_QUERY_EVERY, chunk_size)}


def evaluation_horizon(longest_demo: int) -> int:
    """The step limit of an evaluation rollout for a policy trained on demos up to ``longest_demo`` steps long
    (as recorded, idle steps included): ``max(500, 100 * ceil(1.5 * longest_demo / 100))``.

    A policy acts at the pace of its demos: one trained on a person's slow demos (a pick-place of 480
    steps where the scripted expert takes 60-90) needs about as long, and MetaWorld's 500 steps would
    count it a failure while it is still on its way. 1.5x the longest demo leaves room for one retry
    (a missed grasp, a dropped object), rounded up to a hundred steps so the number reads as a setting;
    never shorter than MetaWorld's own horizon (500, what every scripted-expert result here was measured
    at), and never longer than a TaskEnv allows (LONGEST_STEPS). act-train stores it in the checkpoint;
    act-eval and act-train's own rollouts use it unless --max-steps / --eval-max-steps say otherwise.
    """
    from teleop.env import LONGEST_STEPS, MAX_STEPS

    longest = max(0, int(longest_demo))
    rounded = 100 * -(-3 * longest // 200)  # 100 * ceil(1.5 * longest / 100) in exact integers
    return min(LONGEST_STEPS, max(MAX_STEPS, rounded))


def checkpoint_horizon(checkpoint: dict) -> tuple[int, str]:
    """(steps, why): the evaluation horizon act-train stored in the checkpoint, and a few words on
    where it comes from. A checkpoint written before act-train stored one was evaluated at
    MetaWorld's 500 steps and still is."""
    from teleop.env import LONGEST_STEPS, MAX_STEPS

    stored = checkpoint.get("horizon")
    if stored is None:
        return MAX_STEPS, "MetaWorld's; the checkpoint predates stored horizons"
    steps = int(stored)
    episodes = (checkpoint.get("dataset") or {}).get("episodes") or []
    longest = max((int(e.get("recorded_steps", e.get("num_steps", 0))) for e in episodes), default=0)
    if steps <= MAX_STEPS:
        return steps, (f"MetaWorld's; the longest training demo is {longest} steps" if longest
                       else "MetaWorld's")
    if steps >= LONGEST_STEPS and 3 * longest > 2 * LONGEST_STEPS:
        return steps, f"the longest a TaskEnv allows; the longest training demo is {longest} steps"
    return steps, f"covers the longest training demo, {longest} steps"


LEGACY_INFERENCE = {"temporal_ensemble": DEFAULT_TEMPORAL_ENSEMBLE, "query_every": None}
"""What a checkpoint written before act-train stored its inference runs with."""


def checkpoint_inference(checkpoint: dict) -> dict:
    """The inference act-train chose for this checkpoint (LEGACY_INFERENCE for older ones)."""
    stored = checkpoint.get("inference")
    if not stored:
        return dict(LEGACY_INFERENCE)
    return {"temporal_ensemble": stored.get("temporal_ensemble"), "query_every": stored.get("query_every")}


@dataclass
class ACTConfig:
    # --- observation and action spec -------------------------------------------------------
    state_dim: int = 39
    """Length of the state vector fed to the policy (MetaWorld observations are 39 floats)."""
    action_dim: int = 4
    """Length of one action (MetaWorld: dx, dy, dz, gripper)."""
    camera_names: tuple[str, ...] = ()
    """Cameras whose images the policy sees, in the order of the batch's `images` axis 1.
    Empty means a state-only policy."""
    image_size: tuple[int, int] = (128, 128)
    """(height, width) of every camera image; the backbone turns it into (H/32, W/32) tokens per camera
    (resnet18) or (H/16, W/16) (small). Ignored when camera_names is empty."""
    backbone: str = "resnet18"
    """Image encoder, shared by all cameras (act/backbone.py, plain torch): resnet18 (ResNet-18 with
    torchvision's parameter names and frozen BatchNorm, 11.2M weights; ImageNet weights load from a file
    with act-train --backbone-weights FILE|torchvision) or small (four stride-2 convolutions with GroupNorm, 0.39M
    weights, sized for training from scratch on a CPU). Checkpoints from before this field were resnet18.
    Ignored when camera_names is empty."""

    # --- action chunking -------------------------------------------------------------------
    chunk_size: int = 20
    """Actions predicted per query (K); one learned decoder query per chunk step."""

    # --- transformer -------------------------------------------------------------------------
    hidden_dim: int = 128
    """Width D of every token."""
    feedforward_dim: int = 256
    """Width of the feed-forward block inside each transformer layer."""
    n_heads: int = 8
    """Attention heads per layer; must divide hidden_dim."""
    n_encoder_layers: int = 2
    """Layers of the main transformer encoder over [latent, state, image tokens]."""
    n_decoder_layers: int = 1
    """Layers of the transformer decoder; the last layer's output feeds the action head."""
    dropout: float = 0.1
    """Dropout inside the transformer layers (training only)."""

    # --- CVAE ---------------------------------------------------------------------------------
    vae: bool = True
    """Train ACT as a CVAE: an encoder reads each true action chunk into a style latent z that the
    policy sees in training (z = 0 at inference). Off: z = 0 in training too, no CVAE encoder and no
    KL term (LeRobot's use_vae=False)."""
    n_vae_encoder_layers: int = 1
    """Layers of the CVAE encoder over [CLS, state, action chunk]; used only in training.
    It is the main cost of a training step on CPU."""
    latent_dim: int = 32
    """Size of the style latent z (z = 0 at inference)."""
    kl_weight: float = 10.0
    """Weight of the KL term in the loss (ACT's beta)."""

    # --- optimizer ---------------------------------------------------------------------------
    lr: float = 3e-4
    """AdamW learning rate for everything except the image backbone (ACT's published 1e-5 learns
    far slower here; checkpoints written before act-train chose it per observation set used 3e-4, this
    field's value)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    lr_backbone: float = 1e-5
    """AdamW learning rate of the image backbone (only used when there are cameras)."""

    def __post_init__(self) -> None:
        # JSON has no tuples: accept the lists that a saved config comes back with.
        self.camera_names = tuple(self.camera_names)
        self.image_size = tuple(self.image_size)

    def validate(self) -> "ACTConfig":
        """Raise ValueError naming the field, its value and what to change; return self when valid."""
        for name in ("state_dim", "action_dim", "chunk_size", "hidden_dim", "feedforward_dim",
                     "n_heads", "n_encoder_layers", "n_decoder_layers", "n_vae_encoder_layers",
                     "latent_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}={value!r}: must be a positive integer")
        if self.hidden_dim % self.n_heads != 0:
            raise ValueError(
                f"hidden_dim={self.hidden_dim} is not divisible by n_heads={self.n_heads}: "
                f"pick n_heads among the divisors of hidden_dim, or change hidden_dim "
                f"(e.g. hidden_dim={math.ceil(self.hidden_dim / self.n_heads) * self.n_heads})")
        if self.hidden_dim % 2 != 0:
            raise ValueError(f"hidden_dim={self.hidden_dim} must be even (sine/cosine position "
                             f"embeddings use pairs of channels)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout!r}: must be in [0, 1)")
        if self.kl_weight < 0:
            raise ValueError(f"kl_weight={self.kl_weight!r}: must be >= 0 (0 turns the CVAE into "
                             f"a plain autoencoder of the chunk)")
        for name in ("lr", "weight_decay", "lr_backbone"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name}={value!r}: must be a finite number >= 0")
        if self.lr == 0:
            raise ValueError("lr=0: nothing would train; leave --lr out for act-train's default")
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone={self.backbone!r}: must be one of {', '.join(BACKBONES)} "
                             f"(resnet18: ResNet-18, frozen BatchNorm; small: a 4-layer CNN for CPU training)")
        if self.camera_names:
            if any(not isinstance(c, str) or not c for c in self.camera_names):
                raise ValueError(f"camera_names={self.camera_names!r}: every name must be a "
                                 f"non-empty string")
            if len(set(self.camera_names)) != len(self.camera_names):
                raise ValueError(f"camera_names={self.camera_names!r}: names must be unique")
            if self.hidden_dim % 4 != 0:
                raise ValueError(f"hidden_dim={self.hidden_dim}: with cameras it must be divisible "
                                 f"by 4 (2D position embeddings split it into x and y sine/cosine)")
            if (len(self.image_size) != 2
                    or any(not isinstance(s, int) or isinstance(s, bool) or s < 32
                           for s in self.image_size)):
                raise ValueError(f"image_size={self.image_size!r}: must be (height, width), "
                                 f"integers >= 32 (the resnet18 backbone downsamples by 32)")
        return self

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (tuples become lists) that `from_dict` turns back into an equal config."""
        out = dataclasses.asdict(self)
        out["camera_names"] = list(self.camera_names)
        out["image_size"] = list(self.image_size)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ACTConfig":
        """Rebuild and validate a config. Unknown keys are an error (a typo or a checkpoint from a
        different model); missing keys take today's defaults (a checkpoint without "backbone" was
        built with resnet18, today's default)."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown ACTConfig keys {unknown}; known keys are {known}. "
                             f"Remove or rename them (was this saved by another model?)")
        data = {"backbone": LEGACY_BACKBONE, **data}
        return cls(**data).validate()

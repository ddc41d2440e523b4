"""MetaWorld's scripted expert as an input device, so demos need no person.

It speaks the simulator's own frame (``frame = "world"``): its translation is
MetaWorld's (dx, dy, dz) action and its gripper is the action's last entry.
It needs the goal-observable observation of each tick, given by ``observe``.

``noise`` (``teleop record --expert-noise``) adds Gaussian noise of that standard deviation to the
translation every tick, drawn from a generator re-seeded in ``reset()`` from ``(seed, episode)``, so a
recording is reproduced exactly. The expert is closed-loop, so the ticks after a push off its path steer
back: the demos show recoveries from the small errors a trained policy makes, which an exact expert never
does (DART, Laskey et al. 2017). What is recorded is the action executed, noise included, so replay stays
exact; zero-mean noise leaves the median of the labels, what ACT's L1 loss learns given enough of them, at
the expert's action (clipping to [-1, 1] is monotone and keeps the median). The gripper is never perturbed.
Measured on the 50 tasks it moves ACT's success per task both ways and leaves the total where it was,
and the gains go with the noisy labels rather than the states (BENCHMARKS.md, "Demos with noise"): an
experiment, off by default.
"""

from __future__ import annotations

import warnings

import numpy as np

from devices.base import Command, Device, DeviceError


class ScriptedExpert(Device):
    name = "scripted"
    frame = "world"

    def __init__(self, task: str, *, noise: float = 0.0, seed: int = 0):
        if not (np.isfinite(noise) and noise >= 0):
            raise DeviceError(f"expert noise {noise}: must be a finite number >= 0 (0: the expert's own actions)")
        self.task = task
        self.noise = float(noise)
        self.seed = int(seed)
        self.episode = -1  # incremented by reset(): the first episode is 0
        self._rng: np.random.Generator | None = None
        self._policy = None
        self._obs = None

    def connect(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from metaworld.policies import ENV_POLICY_MAP
        if self.task not in ENV_POLICY_MAP:
            raise DeviceError(f"no scripted expert for task {self.task!r}: MetaWorld has experts for its v3 tasks only")
        self._policy = ENV_POLICY_MAP[self.task]()

    def observe(self, observation) -> None:
        # Some experts (door-open, ...) shift positions inside the array they are given:
        # keep the caller's observation, which is about to be recorded, untouched.
        self._obs = np.array(observation, dtype=np.float64, copy=True)

    def expert_action(self) -> np.ndarray:
        """The expert's action for the last observation, clipped to [-1, 1], shape (4,)."""
        if self._policy is None:
            raise DeviceError("scripted expert used before connect()")
        if self._obs is None:
            raise DeviceError("scripted expert polled before any observation")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.clip(self._policy.get_action(self._obs.copy()), -1.0, 1.0)

    def reset(self) -> None:
        """Start the next episode: the noise stream is re-seeded from (seed, episode)."""
        self.episode += 1
        self._rng = np.random.default_rng([self.seed, self.episode])

    def poll(self) -> Command:
        action = self.expert_action()
        if self.noise:
            if self._rng is None:
                self.reset()
            action[:3] = np.clip(action[:3] + self.noise * self._rng.standard_normal(3), -1.0, 1.0)
        return Command(translation=(float(action[0]), float(action[1]), float(action[2])),
                       gripper=float(action[3]))

    @property
    def episode_attrs(self) -> dict:
        return {"expert_noise": self.noise, "noise_seed": self.seed} if self.noise else {}

    @property
    def status(self) -> str:
        return "ready" if self._policy is not None else "not connected"

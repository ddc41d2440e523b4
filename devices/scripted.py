"""MetaWorld's scripted expert as an input device, so demos need no person.

It speaks the simulator's own frame (``frame = "world"``): its translation is
MetaWorld's (dx, dy, dz) action and its gripper is the action's last entry.
It needs the goal-observable observation of each tick, given by ``observe``.
"""

from __future__ import annotations

import warnings

import numpy as np

from devices.base import Command, Device, DeviceError


class ScriptedExpert(Device):
    name = "scripted"
    frame = "world"

    def __init__(self, task: str):
        self.task = task
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

    def poll(self) -> Command:
        action = self.expert_action()
        return Command(translation=(float(action[0]), float(action[1]), float(action[2])),
                       gripper=float(action[3]))

    @property
    def status(self) -> str:
        return "ready" if self._policy is not None else "not connected"

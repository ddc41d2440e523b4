"""A simulated corrector: MetaWorld's scripted expert, gated by the rule a person watching a policy follows.

It stands in for the person of ``teleop correct`` in tests and benchmarks (``--device corrector``), so
the whole HG-DAgger loop runs headless and repeatably. Like a person it sees only the observations
(where the hand, the fingers and the object are), never the policy's own actions, and it reacts late.

The rule, in simulated time at MetaWorld's 80 Hz (the defaults):

- **Something is wrong** on a step when, over the last ``window_s`` (0.25 s):
  - *stalled*: the expert wants to move (its translation command above 0.3 of full scale) but the hand
    moved less than 4 mm;
  - *heading away*: the hand moved more than 1 cm, in a direction more than 90 degrees off the expert's;
  - *wrong grip*: the expert wants the fingers closed and they stay fully open (opening above 0.9), or
    the reverse, without moving.
- **Take over** when something has been wrong on every step for ``reaction_s`` (0.3 s, a person's
  reaction time) -- the hesitation itself is recorded as the policy's.
- **Drive** with the expert's actions for at least ``drive_s`` (0.75 s), then **hand back** at the first
  step where the fingers are not closing or opening (a grasp or release in progress is finished first);
  after ``give_up_s`` (3 s) of driving it hands back whatever the fingers do (a person who cannot fix
  it lets go: the expert cannot reach an object pushed out of the workspace either).
- It never takes over in the first ``window_s`` of an episode (nothing to judge yet).

Silent ticks carry no gripper (``Command()``), so teleop knows nobody is commanding; while driving
every tick carries the expert's translation and gripper in the simulator's frame (``frame = "world"``).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from devices.base import Command
from devices.scripted import ScriptedExpert

CONTROL_HZ = 80.0  # MetaWorld's control rate: the corrector's clock is the simulated one
FINGERS_MOVING = 0.01  # change of the finger opening (obs[3]) in one step that counts as closing or opening


class SimulatedCorrector(ScriptedExpert):
    name = "corrector"
    frame = "world"

    def __init__(self, task: str, *, reaction_s: float = 0.3, window_s: float = 0.25, drive_s: float = 0.75,
                 give_up_s: float = 3.0):
        super().__init__(task)
        for label, value in (("reaction_s", reaction_s), ("window_s", window_s), ("drive_s", drive_s),
                             ("give_up_s", give_up_s)):
            if not value > 0:
                raise ValueError(f"{label}={value}: must be above 0 seconds")
        self.reaction = max(1, round(reaction_s * CONTROL_HZ))
        self.window = max(2, round(window_s * CONTROL_HZ))
        self.drive = max(1, round(drive_s * CONTROL_HZ))
        self.give_up = max(self.drive, round(give_up_s * CONTROL_HZ))
        self.reset()

    def reset(self) -> None:
        self._hands: deque = deque(maxlen=self.window + 1)
        self._fingers: deque = deque(maxlen=self.window + 1)
        self._wrong_for = 0
        self._driving_for = 0  # 0: silent
        self.takeovers = 0
        self.last_reason = ""

    def observe(self, observation) -> None:
        super().observe(observation)
        self._hands.append(self._obs[0:3].copy())
        self._fingers.append(float(self._obs[3]))

    def wrong(self, expert: np.ndarray) -> str:
        """Why the arm is going wrong right now ("" when it is not), judged over the last window."""
        if len(self._hands) <= self.window:
            return ""
        moved = self._hands[-1] - self._hands[0]
        distance = float(np.linalg.norm(moved))
        wanted = expert[:3]
        fingers_still = abs(self._fingers[-1] - self._fingers[0]) < 0.02
        if np.abs(wanted).max() > 0.3:
            if distance < 0.004:
                return "stalled"
            if distance > 0.01 and float(moved @ wanted) < 0.0:
                return "heading away"
        if fingers_still and ((expert[3] > 0 and self._fingers[-1] > 0.9) or
                              (expert[3] < 0 and self._fingers[-1] < 0.9)):
            return "wrong grip"
        return ""

    def poll(self) -> Command:
        expert = self.expert_action()
        if self._driving_for:
            self._driving_for += 1
            # A grasp closes the fingers by ~0.03 a step; an idle gripper drifts by ~0.002.
            fingers_moving = len(self._fingers) > 1 and abs(self._fingers[-1] - self._fingers[-2]) > FINGERS_MOVING
            if (self._driving_for > self.drive and not fingers_moving) or self._driving_for > self.give_up:
                self._driving_for = 0
                self._wrong_for = 0
                self._hands.clear()  # judge the policy afresh from here
                self._fingers.clear()
                return Command()
            return Command(translation=(float(expert[0]), float(expert[1]), float(expert[2])),
                           gripper=float(expert[3]))
        reason = self.wrong(expert)
        self._wrong_for = self._wrong_for + 1 if reason else 0
        if self._wrong_for >= self.reaction:
            self._driving_for, self.last_reason = 1, reason
            self.takeovers += 1
            return Command(translation=(float(expert[0]), float(expert[1]), float(expert[2])),
                           gripper=float(expert[3]))
        return Command()

    @property
    def status(self) -> str:
        if self._policy is None:
            return "not connected"
        return f"driving ({self.last_reason})" if self._driving_for else "watching"

"""The scripted expert, perturbed the way people teleoperate: a stand-in for human demos.

Why: ACT's authors report much lower success when the same tasks are learned from human
demonstrations than from a scripted policy (human data is slower, hesitant, noisy and
inconsistent between episodes; Zhao et al. 2023, "Learning Fine-Grained Bimanual Manipulation
with Low-Cost Hardware"). Scripted demos are the easy case; this device lets the benchmarks ask
how much of the success survives human-like data without a person in the loop.

``HumanlikeExpert`` wraps :class:`devices.scripted.ScriptedExpert` and, every control tick,
turns the expert's world-frame action into a human-like command. All randomness comes from a
``numpy.random.Generator`` re-seeded in ``reset()`` from ``(seed, episode)``, where ``episode``
counts the resets of this device, so a recording with the same seed, task and spawns is
reproduced exactly. The perturbations, in the order they are applied, and their parameters:

1. Varied speed (``speed_range=(0.5, 1.0)``): one cruise speed per episode, drawn uniformly, caps
   the translation: a command whose largest axis exceeds it is scaled down to it (direction kept),
   smaller commands pass unchanged. People move slower than the expert's saturated proportional
   controller, and not equally slowly in every episode, but they still make the final small
   corrections. (Scaling every command instead slowed the last centimetres of the descent so much
   that the expert sometimes closed the gripper above the puck and then pressed on it until the
   time limit: 13/16 pick-place successes against 15/16 with the cap, other settings equal.)
2. Overshoot and correction (``overshoot_rate=0.6`` per second, ``overshoot_gain=(1.5, 2.5)``,
   ``overshoot_steps=(4, 10)``): occasionally the translation is multiplied by a gain for a few
   ticks, so the hand runs past where the expert meant it to stop; the expert is closed-loop, so
   the following ticks pull it back (the correction comes from the expert itself).
3. Temporally correlated noise (``noise_sigma=0.05``, ``noise_tau_s=0.25``): an
   Ornstein-Uhlenbeck process per translation axis, ``x += theta * (0 - x) + sigma * sqrt(2 theta)
   * N(0, 1)`` with ``theta = 1 / (tau * control_hz)``, whose stationary standard deviation is
   ``sigma`` (action units: 1 is 1 cm per tick, so 0.05 is a drift of about 4 cm/s) and whose
   correlation time is ``tau``. A hand drifts smoothly; it does not jitter independently at 80 Hz.
   (sigma 0.15 drifted the hand out of the expert's 2 cm grasp window: 9/16 pick-place successes.)
4. Hesitations (``hesitation_rate=0.4`` per second, ``hesitation_s=(0.2, 1.0)``,
   ``hesitation_drift=0.1``): occasional pauses, of a duration drawn uniformly, during which the
   translation is only ``hesitation_drift`` times the OU noise (about 0.005, i.e. ~0): the operator
   stops to look. Hesitations and overshoots do not overlap; neither starts while the other runs.
5. A slightly delayed gripper (``gripper_delay_s=(0.04, 0.12)``, one delay per episode, 3-10
   ticks): the gripper command is the expert's from that many ticks earlier (reaction time on a
   button). The pick-place expert waits for the fingers to close before lifting, so a short delay
   costs time, not the grasp.

With these defaults, on the first 20 stratified pick-place-v3 spawns of seed 0: 18/20 successes
in 132 steps on average, against the expert's 20/20 in 53 steps.

The translation is finally clipped to [-1, 1]; the gripper is the (delayed) expert value in
[-1, 1]. Rates are per second of control at ``control_hz`` (MetaWorld: 80 Hz), turned into a
per-tick probability ``rate / control_hz``. ``episode_params`` holds the current episode's draws.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from devices.base import Command, Device
from devices.scripted import ScriptedExpert


class HumanlikeExpert(Device):
    name = "humanlike"
    frame = "world"

    def __init__(self, task: str, *, seed: int = 0, control_hz: float = 80.0,
                 speed_range: tuple[float, float] = (0.5, 1.0),
                 noise_sigma: float = 0.05, noise_tau_s: float = 0.25,
                 hesitation_rate: float = 0.4, hesitation_s: tuple[float, float] = (0.2, 1.0),
                 hesitation_drift: float = 0.1,
                 overshoot_rate: float = 0.6, overshoot_gain: tuple[float, float] = (1.5, 2.5),
                 overshoot_steps: tuple[int, int] = (4, 10),
                 gripper_delay_s: tuple[float, float] = (0.04, 0.12)):
        if control_hz <= 0 or noise_tau_s <= 0:
            raise ValueError("control_hz and noise_tau_s must be positive")
        for label, (low, high) in (("speed_range", speed_range), ("hesitation_s", hesitation_s),
                                   ("overshoot_gain", overshoot_gain), ("overshoot_steps", overshoot_steps),
                                   ("gripper_delay_s", gripper_delay_s)):
            if not 0 <= low <= high:
                raise ValueError(f"{label} must be (low, high) with 0 <= low <= high, got {(low, high)}")
        self.task = task
        self.seed = int(seed)
        self.expert = ScriptedExpert(task)
        self.control_hz = float(control_hz)
        self.speed_range = speed_range
        self.noise_sigma = float(noise_sigma)
        self.noise_theta = 1.0 / (noise_tau_s * self.control_hz)
        self.hesitation_p = hesitation_rate / self.control_hz
        self.hesitation_steps = (max(1, round(hesitation_s[0] * self.control_hz)),
                                 max(1, round(hesitation_s[1] * self.control_hz)))
        self.hesitation_drift = float(hesitation_drift)
        self.overshoot_p = overshoot_rate / self.control_hz
        self.overshoot_gain = overshoot_gain
        self.overshoot_steps = overshoot_steps
        self.gripper_delay_steps = (round(gripper_delay_s[0] * self.control_hz),
                                    round(gripper_delay_s[1] * self.control_hz))
        self.episode = -1  # incremented by reset(): the first episode is 0
        self.episode_params: dict = {}
        self._rng: np.random.Generator | None = None

    # ------------------------------------------------------------------ Device
    def connect(self) -> None:
        self.expert.connect()

    def observe(self, observation) -> None:
        self.expert.observe(observation)

    def reset(self) -> None:
        """Start the next episode: re-seed from (seed, episode) and draw its per-episode factors."""
        self.episode += 1
        rng = np.random.default_rng([self.seed, self.episode])
        self._rng = rng
        self._speed = float(rng.uniform(*self.speed_range))
        self._delay = int(rng.integers(self.gripper_delay_steps[0], self.gripper_delay_steps[1] + 1))
        self._noise = np.zeros(3)
        self._hesitate_left = 0
        self._overshoot_left = 0
        self._overshoot = 1.0
        self._grippers: deque[float] = deque(maxlen=self._delay + 1)
        self.episode_params = {"episode": self.episode, "speed": self._speed, "gripper_delay_steps": self._delay,
                               "hesitations": 0, "hesitation_steps": 0, "overshoots": 0, "overshoot_steps": 0}

    def poll(self) -> Command:
        if self._rng is None:
            self.reset()
        rng, params = self._rng, self.episode_params
        action = self.expert.expert_action()

        # OU noise advances every tick, whatever else happens, so it stays smooth.
        theta = self.noise_theta
        self._noise += theta * -self._noise + self.noise_sigma * math.sqrt(2 * theta) * rng.standard_normal(3)

        # Draw both event starts every tick (fixed consumption keeps the stream easy to reason about).
        start_hesitation = rng.random() < self.hesitation_p
        start_overshoot = rng.random() < self.overshoot_p
        if self._hesitate_left == 0 and self._overshoot_left == 0:
            if start_hesitation:
                self._hesitate_left = int(rng.integers(self.hesitation_steps[0], self.hesitation_steps[1] + 1))
                params["hesitations"] += 1
            elif start_overshoot:
                self._overshoot_left = int(rng.integers(self.overshoot_steps[0], self.overshoot_steps[1] + 1))
                self._overshoot = float(rng.uniform(*self.overshoot_gain))
                params["overshoots"] += 1

        move = action[:3].astype(np.float64)
        peak = float(np.max(np.abs(move)))
        if peak > self._speed:  # cruise slower; fine, small corrections keep the expert's size
            move = move * (self._speed / peak)
        if self._overshoot_left > 0:
            move = move * self._overshoot
            self._overshoot_left -= 1
            params["overshoot_steps"] += 1
        move = move + self._noise
        if self._hesitate_left > 0:
            move = self.hesitation_drift * self._noise
            self._hesitate_left -= 1
            params["hesitation_steps"] += 1
        move = np.clip(move, -1.0, 1.0)

        self._grippers.append(float(action[3]))
        gripper = self._grippers[0]  # the expert's command `delay` ticks ago (the first one until then)
        return Command(translation=(float(move[0]), float(move[1]), float(move[2])),
                       gripper=float(np.clip(gripper, -1.0, 1.0)))

    def close(self) -> None:
        self.expert.close()

    @property
    def status(self) -> str:
        return self.expert.status

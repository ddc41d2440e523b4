"""Device command -> environment action, in the frame of the view the operator watches.

A human pushes "forward" meaning "up the screen, away from me". The camera the
operator watches decides which world direction that is: screen-right and
screen-up, projected on the table plane, become the command's x and y axes.
Devices that already speak the simulator's frame (``frame == "world"``, the
scripted expert) pass through unchanged.

Stop on release. MetaWorld's action moves a mocap target by up to 1 cm a step
and the hand follows it through a soft weld, lagging ~3 cm behind at full
speed: when a person lets go, the hand coasts on by that lag (measured: 3.2-4.5
cm after full speed, 0.5-1 cm after a slow tap). For a person the mapping
therefore drives the target, not the hand: while an axis is commanded, the
target leads the hand by at most ``lead_per_unit`` x the command (the lead sets
the speed: the hand moves about a quarter of the lead each step); when an axis
is released, the target goes back to where the hand was at that moment and
stays there. The hand then stops within a millimetre (BENCHMARKS.md, "Human
pace", travel after release). Pushing: the lead also sets the force the weld
can apply, and 1 cm of it could not swing a door the last few centimetres open.
So when a commanded axis is blocked (the hand moves under a fifth of the pace
the command asks for, 0.5 mm a step at full command, for 8 steps in a row), its
lead grows by 1 mm a step up to ``PUSH_LEAD`` (4 cm, about the lag of
MetaWorld's own action at full speed), and shrinks back as soon as the hand
moves freely again (the target waits for the hand rather than being pulled
back); releasing still brings the target back to the hand. An axis not yet
commanded in the episode holds the target where the reset put it, so the arm
settles from the reset as MetaWorld's own does and the first actions before the
operator moves are exactly zero. The actions recorded are what the simulator
received, so replay and training see exactly this motion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from devices.base import Command
from teleop.cameras import camera_frame
from teleop.env import HAND_SAG, ActionError

ACTION_SCALE = 0.01  # metres the mocap target moves per step for an action of 1 (MetaWorld's action_scale)
LEAD_PER_UNIT = 0.01  # metres the target may lead the hand at full command; see the module docstring
COMMAND_EPS = 1e-6  # below this an axis counts as released
PUSH_LEAD = 0.04  # metres the target may lead a blocked hand (pushing a door, a drawer); see the module docstring
BLOCKED_MOVE = 0.0005  # metres a step: a commanded hand moving less than this is blocked
BLOCKED_STEPS = 8  # steps in a row blocked before the lead grows
PUSH_GROWTH = 0.001  # metres the lead grows per blocked step


@dataclass
class ControlSettings:
    """Per-device feel, saved with the device's settings."""

    sensitivity: float = 1.0  # scales translation before clipping to [-1, 1]
    invert_x: bool = False
    invert_y: bool = False
    invert_z: bool = False


def view_basis(env, camera: str | None) -> np.ndarray:
    """3x3 matrix whose columns are the world directions of the command's x (screen right),
    y (up the screen: away from the operator, on the table) and z (up) axes, for the named view.

    With no camera the identity (world frame) is returned.
    """
    if camera is None:
        return np.eye(3)
    frame = camera_frame(env.model, env.data, camera)
    right, up = frame.right.copy(), frame.up.copy()
    right[2] = 0.0
    up[2] = 0.0
    if np.linalg.norm(up) < 1e-6:  # the camera looks straight along the horizon: "up the screen" is ahead
        up = frame.forward.copy()
        up[2] = 0.0
    right /= np.linalg.norm(right)
    away = up / np.linalg.norm(up)
    return np.column_stack([right, away, [0.0, 0.0, 1.0]])


class StopOnRelease:
    """Per view axis: lead-limited motion while commanded, a fixed hold point once released.

    ``basis``: the view's axes as columns (:func:`view_basis`). Call with the command in view
    axes (each in [-1, 1]) and the arm's (hand, mocap target) positions; returns the world-frame
    translation action. See the module docstring for why.
    """

    def __init__(self, basis: np.ndarray, *, lead_per_unit: float = LEAD_PER_UNIT):
        if not lead_per_unit > 0:
            raise ValueError(f"lead_per_unit={lead_per_unit}: must be positive")
        self.basis = np.asarray(basis, dtype=np.float64)
        self._to_view = np.linalg.inv(self.basis)
        self.lead_per_unit = lead_per_unit
        self.reset()

    def reset(self) -> None:
        self.hold: list[float | None] = [None, None, None]  # view coordinate the target holds, per axis
        self.commanded = [False, False, False]  # per axis: moved by the operator since the reset
        self.push = [0.0, 0.0, 0.0]  # extra lead of a blocked axis (m)
        self._blocked = [0, 0, 0]  # steps in a row each commanded axis has been blocked
        self._last_hand: np.ndarray | None = None
        self._last_sign = [0.0, 0.0, 0.0]

    def __call__(self, move: np.ndarray, hand: np.ndarray, mocap: np.ndarray) -> np.ndarray:
        hand_v = self._to_view @ (np.asarray(hand) + HAND_SAG)  # where the target sits when the hand rests here
        mocap_v = self._to_view @ np.asarray(mocap)
        last, self._last_hand = self._last_hand, hand_v
        target = np.empty(3)
        for i, c in enumerate(move):
            if abs(c) > COMMAND_EPS:
                self.hold[i], self.commanded[i] = None, True
                pushing = self.push[i] > 0.0
                self._update_push(i, c, None if last is None else abs(hand_v[i] - last[i]))
                ahead = mocap_v[i] + c * ACTION_SCALE
                lead = c * self.lead_per_unit + np.sign(c) * self.push[i]
                # Never behind the hand (a reversal starts at once), never further ahead than the lead.
                target[i] = min(max(ahead, hand_v[i]), hand_v[i] + lead) if c > 0 else \
                    max(min(ahead, hand_v[i]), hand_v[i] + lead)
                if pushing:  # a push lead shrinking: wait for the hand, never pull the target back
                    target[i] = max(target[i], mocap_v[i]) if c > 0 else min(target[i], mocap_v[i])
            else:
                self.push[i], self._blocked[i], self._last_sign[i] = 0.0, 0, 0.0
                if self.hold[i] is None:
                    self.hold[i] = hand_v[i] if self.commanded[i] else mocap_v[i]
                target[i] = self.hold[i]
        return np.clip(self.basis @ (target - mocap_v) / ACTION_SCALE, -1.0, 1.0)

    def _update_push(self, i: int, command: float, moved: float | None) -> None:
        """Grow axis i's extra lead while the hand is blocked on it, shrink it once it moves. Blocked:
        under a fifth of the pace the command asks for (BLOCKED_MOVE at full command), so fine motion
        with a small command is not mistaken for a blocked hand."""
        sign = np.sign(command)
        if sign != self._last_sign[i]:  # a new push, or a reversal
            self.push[i], self._blocked[i], self._last_sign[i] = 0.0, 0, sign
            return
        if moved is not None and moved < BLOCKED_MOVE * abs(command):
            self._blocked[i] += 1
            if self._blocked[i] >= BLOCKED_STEPS:
                self.push[i] = min(self.push[i] + PUSH_GROWTH, PUSH_LEAD - self.lead_per_unit)
        else:
            self._blocked[i] = 0
            self.push[i] = max(self.push[i] - 2 * PUSH_GROWTH, 0.0)


class ActionMapper:
    """Turns a device's Command into a 4-float MetaWorld action.

    For a view-frame device, pass ``arm=(hand, mocap)`` (``TaskEnv.arm_state()``) to stop the
    hand where the operator lets go (:class:`StopOnRelease`); without it the command is the
    mocap step itself, as MetaWorld defines its action.
    """

    def __init__(self, device_name: str, frame: str, basis: np.ndarray | None = None,
                 settings: ControlSettings | None = None, *, lead_per_unit: float = LEAD_PER_UNIT):
        self.device_name = device_name
        self.frame = frame
        self.settings = settings or ControlSettings()
        self.lead_per_unit = lead_per_unit
        self.basis = np.eye(3) if basis is None or frame == "world" else np.asarray(basis, dtype=np.float64)
        self.gripper = -1.0  # open until told otherwise

    @property
    def basis(self) -> np.ndarray:
        return self._basis

    @basis.setter
    def basis(self, value: np.ndarray) -> None:
        self._basis = np.asarray(value, dtype=np.float64)
        self.stop = StopOnRelease(self._basis, lead_per_unit=self.lead_per_unit)

    def reset(self) -> None:
        self.gripper = -1.0
        self.stop.reset()

    def __call__(self, command: Command, arm: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        if not command.is_finite():
            raise ActionError(f"device {self.device_name!r} sent a non-finite command "
                              f"{command.translation}/{command.gripper}: refused before the simulator")
        move = np.asarray(command.translation, dtype=np.float64)
        if self.frame != "world":
            s = self.settings
            move = move * s.sensitivity * np.array([-1.0 if s.invert_x else 1.0,
                                                    -1.0 if s.invert_y else 1.0,
                                                    -1.0 if s.invert_z else 1.0])
            move = self.stop(np.clip(move, -1.0, 1.0), *arm) if arm is not None else self.basis @ move
        if command.gripper is not None:
            self.gripper = float(np.clip(command.gripper, -1.0, 1.0))
        action = np.empty(4, dtype=np.float32)
        action[:3] = np.clip(move, -1.0, 1.0)
        action[3] = self.gripper
        return action

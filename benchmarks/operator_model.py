"""A simulated person at the live window, to measure what a human pace and the window's defaults cost.

It is not a person. It is a controller with a person's main limits, acting only through the real
devices and the real control loop (:func:`teleop.live.window.run_live`), in wall-clock time, at the
window's ``--speed``:

- **It sees late.** It acts on what the scene showed ``reaction_s`` ago (default 0.25 s: simple visual
  reaction times are 0.2-0.3 s), and anticipates only ``anticipation`` of its own motion over that delay.
- **It misjudges depth.** The gap it perceives between the gripper and where it wants the gripper to be
  is off by a random error, redrawn at every glance (``glance_s``), larger along the main view's line of
  sight than across it (``depth_error`` / ``lateral_error`` of the gap, plus floors that stand for what
  the depth cues still leave: the spot under the gripper tells the last centimetre, not the last
  millimetre).
- **It knows the task as the scripted expert does.** Where to go next (above the object, down, to the
  goal) and when to close the gripper come from MetaWorld's scripted policy applied to what it
  perceives (``metaworld.policies``); how to get there is the device, pressed like a person would.
  When the next waypoint jumps somewhere new it stops and looks for ``plan_s`` first; it lines up
  over a waypoint more than 5 cm below before going down to it (to ``lower_after_m`` or a quarter of
  the distance, whichever is larger), and closes the gripper once it is there (``grasp_m``), or at once
  when the expert wants it closed far from an object its waypoint is not on (``fist_m``: pushing with a fist),
  or when the expert has moved on from the object while the hand is at it (grasp first, then watch the
  fingers close before moving).
- **Keyboard**: per screen axis it holds a key while the gap is large, releases it when the gap (with
  its anticipation) falls below ``release_m``, and for smaller gaps gives one short press sized to
  cover part of the gap with the keyboard's ramp, then waits to see the result; at most ``max_keys``
  motion keys at once, the largest gaps first. Space for the gripper, K to keep, Backspace to retry a
  failed spawn.
- **Gamepad / SpaceMouse**: deflects the stick or the cap in proportion to the gap (full deflection at
  ``full_scale_m``), through a real SDL virtual controller or report bytes to ``SpaceMouseDevice``.

It starts an episode after looking at a fresh spawn for ``look_s``, keeps a success after a reaction
delay, and retries a failure on the same spawn. What it cannot model: learning, fatigue, boredom,
mistaking one object for another, reading the HUD's distances; and a person's planning is richer
than the expert's waypoints. Its figures are a floor on the wall time and attempts a real operator
needs, and a fair way to compare settings (speed, step limit, stop-on-release) with each other.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

KEYS_BY_AXIS = (("d", "a"), ("w", "s"), ("r", "f"))  # (+, -) keys of the view's x, y, z axes
PAD_AXES = (0, 1, 3)  # SDL game controller: leftx, lefty, righty
PAD_SIGNS = (1.0, -1.0, -1.0)  # leftx right = +x; lefty down = -y; righty down = -z (the default bindings)
PAD_A, PAD_BACK, PAD_RB = 0, 4, 10


@dataclass
class OperatorParams:
    reaction_s: float = 0.25
    anticipation: float = 0.5
    glance_s: float = 0.3
    depth_error: float = 0.15  # fraction of the gap, along the line of sight
    lateral_error: float = 0.05  # fraction of the gap, across it
    depth_floor_m: float = 0.003
    lateral_floor_m: float = 0.0015
    release_m: float = 0.012  # keyboard: let go of a held key when the anticipated gap is this small
    hold_m: float = 0.025  # keyboard: hold a key for gaps above this; tap below
    near_m: float = 0.004  # gaps below this need nothing on that axis
    full_scale_m: float = 0.04  # gamepad / SpaceMouse: full deflection for gaps this large
    look_s: float = 1.0  # looking at a fresh spawn before moving
    plan_s: float = 0.5  # stopping to look when the next waypoint is somewhere new (3 cm or more away)
    max_keys: int = 2  # keyboard: motion keys held at once (one hand on W A S D R F)
    lower_after_m: float = 0.02  # goes down only once lined up within this (on the table plane)
    grasp_m: float = 0.015  # closes the gripper only this close to where the waypoint wants it
    fist_m: float = 0.06  # ...or at once, farther than this from an object it is not going to grasp (a fist)
    seed: int = 0


@dataclass
class OperatorLog:
    attempts: int = 0  # recordings started
    kept: int = 0
    kept_at: list = field(default_factory=list)  # wall time (perf_counter) of each keep


def expert_intent(task: str, policy, obs: np.ndarray) -> tuple[np.ndarray, bool]:
    """Where the scripted expert wants the gripper next, and whether it wants the gripper closed."""
    obs = np.array(obs, dtype=np.float64)  # some policies edit the parsed observation in place
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        action = policy.get_action(obs.copy())
        parsed = policy._parse_obs(obs.copy())
        if hasattr(policy, "_desired_pos"):
            target = np.asarray(policy._desired_pos(parsed), dtype=np.float64)
        else:
            # reach, drawer-open: no separate waypoint method; follow the expert's own step direction
            # out to the distance its gain implies (MetaWorld's move(): action = p * gap, p >= 4).
            target = obs[:3] + np.asarray(action[:3], dtype=np.float64) / 4.0
    return target, bool(action[3] > 0)


class SimulatedOperator(threading.Thread):
    """Drives one live window (``control``: its ControlLoop) until it closes or ``stop`` is set.

    device: "keyboard", "gamepad" (``pad``: a devices.stand_ins.VirtualPad) or "spacemouse"
    (``hid``: a devices.stand_ins.FakeHid with the unit at ``hid_path``).
    """

    def __init__(self, control, device: str, params: OperatorParams = OperatorParams(), *, pad=None, hid=None,
                 hid_path=None):
        super().__init__(name="simulated-operator", daemon=True)
        import pygame
        from metaworld.policies import ENV_POLICY_MAP

        self.pygame = pygame
        self.control, self.device, self.params = control, device, params
        self.pad, self.hid, self.hid_path = pad, hid, hid_path
        self.policy = ENV_POLICY_MAP[control.env.task]()
        self.rng = np.random.default_rng(params.seed)
        self.stop = threading.Event()
        self.error: Optional[BaseException] = None
        self.log = OperatorLog()
        self.history: deque = deque()  # (wall time, obs, hand, flow phase, gripper closed)
        self._basis = control.mapper.basis
        self._to_view = np.linalg.inv(self._basis)
        from teleop.cameras import camera_frame

        frame = camera_frame(control.env.model, control.env.data, control.config.camera)
        self._sight = (frame.forward, frame.right, frame.up)
        self._noise = np.zeros(3)
        self._next_glance = 0.0
        self._held: dict[int, Optional[str]] = {0: None, 1: None, 2: None}  # axis -> key held
        self._tap_until: dict[int, float] = {}
        self._axis_free_at = {0: 0.0, 1: 0.0, 2: 0.0}  # no new decision on an axis before this
        self._gripper_free_at = 0.0
        self._decided_at = 0.0  # when the pending review decision was made
        self._waypoint: Optional[np.ndarray] = None
        self._planning_until = 0.0
        self._idle_since: Optional[float] = None
        self._last_phase = None

    # ---- seeing --------------------------------------------------------------------------------
    def _observe(self, now: float) -> None:
        c = self.control
        obs = c.obs
        if obs is None:
            return
        # obs[:3] is the hand body (4.5 cm above the fingertips): the point the expert's waypoints are for.
        self.history.append((now, obs, np.array(obs[:3]), c.flow.phase.value, c.mapper.gripper > 0))
        while len(self.history) > 2 and self.history[1][0] <= now - self.params.reaction_s - 0.5:
            self.history.popleft()

    def _seen(self, now: float):
        """The newest snapshot at least ``reaction_s`` old (the oldest if none is that old yet)."""
        target = now - self.params.reaction_s
        seen = self.history[0]
        for item in self.history:
            if item[0] > target:
                break
            seen = item
        return seen

    def _velocity(self, now: float) -> np.ndarray:
        """The hand's velocity as seen (m per wall second), over the 0.1 s before the seen snapshot."""
        seen = self._seen(now)
        earlier = self._seen(now - 0.1)
        dt = seen[0] - earlier[0]
        return (seen[2] - earlier[2]) / dt if dt > 1e-3 else np.zeros(3)

    def _fingers_moving(self, now: float) -> bool:
        """Whether the fingers' opening (obs[3]) still changed over the 0.1 s before the seen snapshot."""
        return abs(float(self._seen(now)[1][3]) - float(self._seen(now - 0.1)[1][3])) > 1e-3

    def _perceived_gap(self, now: float, target: np.ndarray, hand: np.ndarray) -> np.ndarray:
        """target - hand in the view's axes (right, up the screen, up), as this person judges it."""
        p = self.params
        gap = target - hand
        if now >= self._next_glance:
            self._noise = self.rng.standard_normal(3)
            self._next_glance = now + p.glance_s
        distance = float(np.linalg.norm(gap))
        forward, right, up = self._sight
        error = (self._noise[0] * (p.depth_error * distance + p.depth_floor_m) * forward
                 + (self._noise[1] * right + self._noise[2] * up) * (p.lateral_error * distance + p.lateral_floor_m))
        return self._to_view @ (gap + error)

    # ---- acting --------------------------------------------------------------------------------
    def _key(self, name: str, down: bool) -> None:
        pg = self.pygame
        code = pg.key.key_code(name)
        pg.event.post(pg.event.Event(pg.KEYDOWN if down else pg.KEYUP, key=code, mod=0, unicode="", scancode=0))

    def _tap_key(self, name: str) -> None:
        self._key(name, True)
        time.sleep(0.03)
        self._key(name, False)

    def _release_all(self) -> None:
        for axis, key in self._held.items():
            if key is not None:
                self._key(key, False)
                self._held[axis] = None
        if self.device == "gamepad":
            for index in PAD_AXES:
                self.pad.axis(index, 0)
        elif self.device == "spacemouse":
            self._puck(np.zeros(3))

    def _press_button(self, action: str) -> None:
        """keep / discard / gripper through the device's own controls where it has them."""
        if self.device == "gamepad" and action in ("keep", "discard", "gripper"):
            button = {"keep": PAD_RB, "discard": PAD_BACK, "gripper": PAD_A}[action]
            self.pad.button(button, True)
            time.sleep(0.05)
            self.pad.button(button, False)
        elif self.device == "spacemouse" and action == "gripper":
            from devices.stand_ins import buttons

            self.hid.feed(self.hid_path, buttons(1))  # left button: gripper toggle
            time.sleep(0.05)
            self.hid.feed(self.hid_path, buttons(0))
        else:  # the window's keys work with every device
            self._tap_key({"keep": "k", "discard": "backspace", "gripper": "space"}[action])

    def _puck(self, deflection: np.ndarray) -> None:
        """SpaceMouse cap deflection in view axes (each in [-1, 1]) as HID report bytes."""
        from devices.spacemouse import AXIS_FULL_SCALE, HID_TO_VIEW
        from devices.stand_ins import report

        raw = [int(round(v * s * AXIS_FULL_SCALE)) for v, s in zip(deflection, HID_TO_VIEW[:3])]
        self.hid.feed(self.hid_path, report(1, *raw), report(2, 0, 0, 0))

    def _drive_keyboard(self, now: float, gap: np.ndarray, speed: np.ndarray) -> None:
        p = self.params
        for axis in np.argsort(-np.abs(gap)):  # the largest gaps first, while fingers are free
            held = self._held[axis]
            if held is not None and axis in self._tap_until:
                if now >= self._tap_until[axis]:  # the end of a short press
                    self._key(held, False)
                    self._held[axis] = None
                    del self._tap_until[axis]
                    self._axis_free_at[axis] = now + p.reaction_s
                continue
            if now < self._axis_free_at[axis]:
                continue
            ahead = gap[axis] - p.anticipation * speed[axis] * p.reaction_s
            plus, minus = KEYS_BY_AXIS[axis]
            want = plus if ahead > 0 else minus
            if held is not None:
                if abs(ahead) < p.release_m or held != want:
                    self._key(held, False)
                    self._held[axis] = None
                    self._axis_free_at[axis] = now + p.reaction_s
                continue
            if sum(k is not None for k in self._held.values()) >= p.max_keys:
                continue
            if abs(gap[axis]) > p.hold_m:
                self._key(want, True)
                self._held[axis] = want
            elif abs(gap[axis]) > p.near_m:
                self._key(want, True)
                self._held[axis] = want
                self._tap_until[axis] = now + self._press_time(0.7 * abs(gap[axis]))

    def _press_time(self, distance: float) -> float:
        """How long to hold a key to move about ``distance``, knowing the keyboard's ramp and the pace."""
        from devices.keyboard import ramp

        c = self.control
        pace = c.mapper.lead_per_unit / 4.0 * 80.0 * c.speed  # metres per wall second at full command
        keyboard = c.device if c.device.name == "keyboard" else None
        ramp_s, start = (keyboard.ramp_s, keyboard.start_fraction) if keyboard else (0.3, 0.25)
        travelled, t, dt = 0.0, 0.0, 0.01
        while travelled < distance and t < 1.0:
            travelled += ramp(t, ramp_s, start) * pace * dt
            t += dt
        return max(0.04, t)

    def _drive_proportional(self, gap: np.ndarray, speed: np.ndarray) -> None:
        p = self.params
        ahead = gap - p.anticipation * speed * p.reaction_s
        deflection = np.clip(ahead / p.full_scale_m, -1.0, 1.0)
        deflection[np.abs(gap) < p.near_m] = 0.0
        if self.device == "gamepad":
            for index, sign, value in zip(PAD_AXES, PAD_SIGNS, deflection):
                self.pad.axis(index, int(round(np.clip(value * sign, -1, 1) * 32767)))
        else:
            self._puck(deflection)

    # ---- the loop ------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            while not self.stop.is_set():
                now = time.perf_counter()
                self._observe(now)
                if self.history:
                    self._tick(now)
                time.sleep(0.01)
        except BaseException as error:  # noqa: BLE001 - reported by the benchmark
            self.error = error
        finally:
            try:
                self._release_all()
            except Exception:  # noqa: BLE001 - the window may be gone
                pass

    def _tick(self, now: float) -> None:
        c, p = self.control, self.params
        phase = c.flow.phase.value
        if phase != self._last_phase:
            if phase == "recording" and self._last_phase in ("idle", "paused", None):
                self.log.attempts += self._last_phase != "paused"
            if phase in ("review", "idle"):
                self._release_all()
            self._idle_since, self._decided_at = now, 0.0
            self._last_phase = phase
        if phase == "idle":
            if now - self._idle_since < p.look_s:
                return
        elif phase == "review":
            if now - self._idle_since < p.reaction_s + 0.2 or self._decided_at:
                return
            self._decided_at = now
            success = c.flow.ended is not None and (c.flow.ended.success or c.flow.ended.marked_success)
            self._press_button("keep" if success else "discard")
            if success:
                self.log.kept += 1
                self.log.kept_at.append(time.perf_counter())
            return
        elif phase != "recording":
            return
        _, obs, hand, seen_phase, closed = self._seen(now)
        target, close = expert_intent(c.env.task, self.policy, obs)
        if self._waypoint is None or np.linalg.norm(target - self._waypoint) > 0.03:
            # The next waypoint jumped somewhere new (not a target that drifts, like a door's handle
            # as it opens): stop and look before going there.
            self._release_all()
            self._planning_until = now + p.plan_s
        self._waypoint = target
        if now < self._planning_until:
            return
        gap = self._perceived_gap(now, target, hand)
        arrived = np.linalg.norm(gap) < p.grasp_m
        # A person lines up over a target before a long way down, so as not to hit anything on the way
        # (to within what they can judge from that far: the misjudgment grows with the distance).
        if gap[2] < -0.05 and np.hypot(gap[0], gap[1]) > max(p.lower_after_m, 0.25 * np.linalg.norm(gap)):
            gap[2] = 0.0
        speed = self._to_view @ self._velocity(now)
        # Opening is done at once; closing once the gripper is where it should close (the expert starts
        # closing on the way down, which at a person's pace shuts the fingers above the object), or at
        # once when the waypoint is not the object itself and the hand is far from it: a fist to push
        # with (door-open's expert pushes the handle with closed fingers; open ones straddle the handle
        # and jam as the door swings). Where the waypoint is the object, it is there to be grasped.
        moved_on = np.linalg.norm(target - obs[4:7]) > p.grasp_m * 2
        fist = moved_on and np.linalg.norm(hand - obs[4:7]) > p.fist_m
        # At the object while the expert has already moved on (peg-insert-side's expert heads for the
        # hole once the hand is down at the peg, and closes on the way): grasp first, and hold still
        # until the fingers have stopped closing, as a person watches a grasp before lifting.
        grasp = close and moved_on and not fist
        if close != closed and now >= self._gripper_free_at and (arrived or not close or fist or grasp):
            self._press_button("gripper")
            self._gripper_free_at = now + p.reaction_s + 0.1
        if grasp and (not closed or self._fingers_moving(now)):
            self._release_all()
            return
        if self.device == "keyboard":
            self._drive_keyboard(now, gap, speed)
        else:
            self._drive_proportional(gap, speed)


def describe(params: OperatorParams) -> str:
    """The model's parameters in one line, for a benchmark's report."""
    return (f"reaction {params.reaction_s:.2f} s, anticipates {params.anticipation:.0%} of its motion, depth "
            f"error {params.depth_error:.0%} of the gap + {params.depth_floor_m * 1000:.1f} mm, lateral "
            f"{params.lateral_error:.0%} + {params.lateral_floor_m * 1000:.1f} mm, a glance every "
            f"{params.glance_s:.1f} s")

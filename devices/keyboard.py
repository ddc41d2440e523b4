"""Keyboard teleoperation from the pygame window's key events.

The teleop window owns pygame and its event pump. Each tick the live loop
drains the queue once and hands the events to every device that wants them::

    events = pygame.event.get()
    keyboard.handle_events(events)
    command = keyboard.poll()

Held keys are tracked here from KEYDOWN/KEYUP, not read with
``pygame.key.get_pressed()``: that table is not updated by posted events under
SDL's dummy video driver (tests, headless runs), and tracking the press time
of each key is what the acceleration ramp needs anyway.

Movement: a held key starts at ``start_fraction`` of full speed, so a tap
nudges the arm, and eases up to full speed over ``ramp_s`` seconds (smoothstep,
no jerk at either end). While a ``precision`` key (shift by default) is held,
motion is scaled by ``precision_scale``.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Mapping, Optional

from devices.actions import (
    EVENT_ACTIONS,
    help_lines,
    GRIPPER_ACTIONS,
    MOTION_ACTIONS,
    GripperLatch,
    check_action,
    clip_unit,
    events_for,
    motion_axis,
)
from devices.base import Command, Device, DeviceError

# Key names are pygame's (``pygame.key.name``), lower case. MetaWorld's actions have no rotation, so
# no key turns the gripper by default (the vocabulary still has +rz ..., for a bindings file).
DEFAULT_KEY_BINDINGS: dict[str, str] = {
    "w": "+y", "s": "-y", "a": "-x", "d": "+x", "r": "+z", "f": "-z",
    "up": "+y", "down": "-y", "left": "-x", "right": "+x",
    "left shift": "precision", "right shift": "precision",
    "space": "gripper_toggle",
    "return": "toggle_record", "enter": "toggle_record",
    "backspace": "discard",
    "k": "keep",
    "m": "mark_success",
    "n": "reset",
    "p": "pause",
    ".": "step",
    "[": "slower", "]": "faster",
    "escape": "quit",
}

def ramp(held_s: float, ramp_s: float, start_fraction: float) -> float:
    """Speed fraction for a key held ``held_s`` seconds: start_fraction -> 1 over ramp_s."""
    if ramp_s <= 0:
        return 1.0
    u = min(max(held_s / ramp_s, 0.0), 1.0)
    smooth = u * u * (3.0 - 2.0 * u)
    return start_fraction + (1.0 - start_fraction) * smooth


def motion_from_keys(
    held_since: Mapping[str, float],
    now: float,
    bindings: Mapping[str, str],
    *,
    ramp_s: float = 0.3,
    start_fraction: float = 0.25,
    precision_scale: float = 0.3,
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Translation and rotation for the keys held at ``now``.

    held_since: key name -> time the key went down. Opposite keys on one axis
    cancel; two keys for the same direction (W and Up) do not add beyond 1.
    """
    axes = [0.0] * 6
    precise = False
    for key, since in held_since.items():
        action = bindings.get(key)
        if action == "precision":
            precise = True
        elif action in MOTION_ACTIONS:
            index, sign = motion_axis(action)
            axes[index] += sign * ramp(now - since, ramp_s, start_fraction)
    scale = precision_scale if precise else 1.0
    axes = [clip_unit(v) * scale for v in axes]
    return (axes[0], axes[1], axes[2]), (axes[3], axes[4], axes[5])


_SHORT_KEY_NAMES = {"return": "Enter", "backspace": "Bksp", "escape": "Esc", "left shift": "Shift",
                    "right shift": "Shift", "space": "Space"}


def _key_label(key: str) -> str:
    if key in _SHORT_KEY_NAMES:
        return _SHORT_KEY_NAMES[key]
    return key.upper() if len(key) == 1 else key.title()


def key_labels(bindings: Mapping[str, str] = DEFAULT_KEY_BINDINGS) -> dict[str, str]:
    """Action -> the label of its first key (``"keep" -> "K"``, ``"toggle_record" -> "Enter"``)."""
    first_key: dict[str, str] = {}
    for key, action in bindings.items():
        first_key.setdefault(action, _key_label(key))
    return first_key


def bindings_help(bindings: Mapping[str, str] = DEFAULT_KEY_BINDINGS) -> list[str]:
    """Short lines for the on-screen help, e.g. ``"W/S: up/down the screen  A/D: left/right"``.

    Each action shows its first key (the others, e.g. the arrow keys, work too); actions
    nothing is bound to are left out, so the help never lists a key that does nothing.
    """
    return help_lines(key_labels(bindings))


class KeyboardDevice(Device):
    """Hold-to-move keyboard control; feed it the window's events with handle_events().

    bindings: key name -> action (see devices.actions); defaults to
        DEFAULT_KEY_BINDINGS. Replaces the defaults entirely.
    ramp_s: seconds from a key going down to full speed.
    start_fraction: speed fraction at the instant a key goes down.
    precision_scale: motion multiplier while a ``precision`` key is held.
    clock: monotonic seconds; tests pass a fake one.
    """

    name = "keyboard"
    frame = "view"

    def __init__(
        self,
        bindings: Optional[Mapping[str, str]] = None,
        *,
        ramp_s: float = 0.3,
        start_fraction: float = 0.25,
        precision_scale: float = 0.3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        raw = dict(DEFAULT_KEY_BINDINGS if bindings is None else bindings)
        self.bindings: dict[str, str] = {}
        for key, action in raw.items():
            try:
                check_action(action, where=f"keyboard binding {key!r}")
            except ValueError as exc:
                raise DeviceError(str(exc)) from None
            self.bindings[key.lower()] = action
        if not 0.0 < precision_scale <= 1.0:
            raise DeviceError(f"precision_scale={precision_scale}: use a value in (0, 1]")
        self.ramp_s = ramp_s
        self.start_fraction = start_fraction
        self.precision_scale = precision_scale
        self._clock = clock
        self._held: dict[str, float] = {}
        self._pending: list[str] = []
        self._step_presses = 0
        self._gripper = GripperLatch()
        self._pygame = None

    def connect(self) -> None:
        import pygame

        if not pygame.display.get_init():
            raise DeviceError(
                "the keyboard reads the teleop window's events: call pygame.init() and "
                "open the window before connecting the keyboard"
            )
        for key in self.bindings:
            try:
                pygame.key.key_code(key)
            except ValueError:
                raise DeviceError(
                    f"keyboard binding {key!r}: not a pygame key name; "
                    "use names such as 'w', 'space', 'left shift', 'return'"
                ) from None
        self._pygame = pygame

    def handle_events(self, events: Iterable) -> None:
        """Take this tick's pygame events (the ones the window drained)."""
        pygame = self._pygame
        if pygame is None:
            raise DeviceError("KeyboardDevice.handle_events() before connect()")
        now = self._clock()
        for event in events:
            if event.type == pygame.KEYDOWN:
                key = pygame.key.name(event.key).lower()
                if key in self._held:  # key repeat: the key never went up
                    continue
                self._held[key] = now
                action = self.bindings.get(key)
                if action in EVENT_ACTIONS or action in GRIPPER_ACTIONS:
                    self._pending.append(action)
                self._step_presses += action == "step"
            elif event.type == pygame.KEYUP:
                self._held.pop(pygame.key.name(event.key).lower(), None)
            elif event.type == pygame.WINDOWFOCUSLOST:
                # The KEYUP of a key held while focus moves away never arrives.
                self._held.clear()

    def poll(self) -> Command:
        translation, rotation = motion_from_keys(
            self._held,
            self._clock(),
            self.bindings,
            ramp_s=self.ramp_s,
            start_fraction=self.start_fraction,
            precision_scale=self.precision_scale,
        )
        actions, self._pending = self._pending, []
        changed = self._gripper.apply(actions)
        return Command(translation, rotation, self._gripper.target, events_for(actions, changed))

    def take_step_presses(self) -> int:
        """How many times the ``step`` key went down since the last call.

        A command's events are a set, so presses faster than the control rate would merge; the
        live window counts them here and runs one paused step for each.
        """
        presses, self._step_presses = self._step_presses, 0
        return presses

    def reset(self) -> None:
        self._gripper.reset()
        self._pending.clear()
        self._step_presses = 0

    def close(self) -> None:
        self._held.clear()
        self._pending.clear()
        self._pygame = None

    def bindings_help(self) -> list[str]:
        return bindings_help(self.bindings)

    @property
    def status(self) -> str:
        return "connected" if self._pygame is not None else "not connected"

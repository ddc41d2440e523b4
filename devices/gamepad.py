"""Gamepad teleoperation through pygame (SDL's game-controller API when it knows the pad).

The teleop window owns pygame and its event pump; each tick the live loop
hands the drained events over and then polls::

    events = pygame.event.get()
    gamepad.handle_events(events)   # button presses shorter than a tick, unplug
    command = gamepad.poll()

Sticks and triggers are read as state at poll time. Button presses come from
the events when the loop feeds them (so a tap shorter than a tick still counts)
and from comparing held buttons between polls when it does not; never both, or
a press seen by a pump between ticks would count twice.

SDL drops joystick input while its window is not focused unless
SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS=1 is set before pygame.init(): headless
runs and tests need it (:func:`allow_background_events`).

Stick axes pass a radial deadzone, rescaled so motion starts smoothly at its
edge and full deflection still reaches 1; per-axis deadzones would snap
diagonal motion onto the axes.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Optional

from devices.actions import (
    EVENT_ACTIONS,
    GRIPPER_ACTIONS,
    MOTION_ACTIONS,
    GripperLatch,
    clip_unit,
    events_for,
    help_lines,
    motion_axis,
)
from devices.base import Command, Device, DeviceError, Event
from devices.gamepad_layouts import (
    BUTTONS,
    LAYOUTS,
    STICKS,
    TRIGGERS,
    PadLayout,
    layout_for_name,
    load_mapping_file,
    merged_bindings,
)

log = logging.getLogger(__name__)
_NEUTRAL_AXES = {name: 0.0 for name in STICKS + TRIGGERS}


def allow_background_events() -> None:
    """Let SDL deliver pad input without window focus. Call before pygame.init()."""
    os.environ.setdefault("SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS", "1")


@dataclass(frozen=True)
class PadState:
    """One reading: sticks in [-1, 1] (y grows downward), triggers in [0, 1], held buttons."""

    axes: Mapping[str, float]
    buttons: frozenset[str] = frozenset()


NEUTRAL = PadState(dict(_NEUTRAL_AXES))


def radial_deadzone(x: float, y: float, deadzone: float) -> tuple[float, float]:
    magnitude = math.hypot(x, y)
    if magnitude <= deadzone:
        return 0.0, 0.0
    scale = min(1.0, (magnitude - deadzone) / (1.0 - deadzone)) / magnitude
    return x * scale, y * scale


def _control_value(state: PadState, control: str, sticks: Mapping[str, float]) -> float:
    if control in sticks:
        return sticks[control]
    if control in TRIGGERS:
        return state.axes.get(control, 0.0)
    return 1.0 if control in state.buttons else 0.0


def pad_motion(
    state: PadState,
    bindings: Mapping[str, str],
    *,
    deadzone: float,
    precision_scale: float,
    threshold: float = 0.5,
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Translation and rotation for one pad reading."""
    sticks = {}
    for xname, yname in (("leftx", "lefty"), ("rightx", "righty")):
        x, y = radial_deadzone(state.axes.get(xname, 0.0), state.axes.get(yname, 0.0), deadzone)
        sticks[xname], sticks[yname] = x, y
    axes = [0.0] * 6
    precise = False
    for control, action in bindings.items():
        value = _control_value(state, control, sticks)
        if action == "precision":
            precise = precise or value >= threshold
        elif action in MOTION_ACTIONS:
            index, sign = motion_axis(action)
            axes[index] += sign * value
    scale = precision_scale if precise else 1.0
    axes = [clip_unit(v) * scale for v in axes]
    return (axes[0], axes[1], axes[2]), (axes[3], axes[4], axes[5])


def pad_actions(
    before: PadState,
    after: PadState,
    bindings: Mapping[str, str],
    *,
    threshold: float = 0.5,
    pressed: Optional[Iterable[str]] = None,
) -> list[str]:
    """Discrete actions (gripper, events) triggered between two readings.

    pressed: buttons that went down according to the event queue; when None,
    presses are found by comparing held buttons. Triggers fire on crossing
    ``threshold`` upward.
    """
    went_down = set(after.buttons - before.buttons) if pressed is None else set(pressed)
    for trigger in TRIGGERS:
        if before.axes.get(trigger, 0.0) < threshold <= after.axes.get(trigger, 0.0):
            went_down.add(trigger)
    actions = []
    for control in TRIGGERS + BUTTONS:  # a fixed order, so results are reproducible
        action = bindings.get(control)
        if control in went_down and (action in EVENT_ACTIONS or action in GRIPPER_ACTIONS):
            actions.append(action)
    return actions


def read_raw_source(joystick, source: str, *, trigger: bool) -> float:
    """Read one ``aN`` / ``bN`` / ``hN.M`` source from a pygame Joystick."""
    kind, rest = source[0], source[1:]
    if kind == "a":
        index = int(rest)
        if index >= joystick.get_numaxes():
            return 0.0
        value = joystick.get_axis(index)
        # Joystick triggers rest at -1, but on Linux read 0 until first touched:
        # only the upper half of the travel counts, so an untouched trigger is 0.
        return max(0.0, value) if trigger else value
    if kind == "b":
        index = int(rest)
        return 1.0 if index < joystick.get_numbuttons() and joystick.get_button(index) else 0.0
    hat, bit = (int(p) for p in rest.split("."))
    if hat >= joystick.get_numhats():
        return 0.0
    hx, hy = joystick.get_hat(hat)
    bits = (1 if hy > 0 else 0) | (2 if hx > 0 else 0) | (4 if hy < 0 else 0) | (8 if hx < 0 else 0)
    return 1.0 if bits & bit else 0.0


class GamepadDevice(Device):
    """A gamepad through pygame; feed it the window's events with handle_events().

    index: pygame joystick index to use; default: the first (or first matching ``name``).
    name: pick the first pad whose name contains this (case-insensitive).
    layout: force "xbox", "playstation" or "generic" instead of choosing by name.
    mapping_file: JSON/TOML file with layout, deadzone, bindings, raw overrides.
    deadzone: radial stick deadzone, fraction of full deflection.
    precision_scale: motion multiplier while the ``precision`` control is held.
    threshold: trigger travel that counts as pressed.
    api: "auto" (game-controller API when SDL knows the pad), "controller" or "joystick".
    retry_interval_s: how often to look for the pad again after an unplug.
    """

    name = "gamepad"
    frame = "view"

    def __init__(
        self,
        index: Optional[int] = None,
        *,
        name: Optional[str] = None,
        layout: Optional[str] = None,
        mapping_file: Optional[str] = None,
        deadzone: float = 0.15,
        precision_scale: float = 0.3,
        threshold: float = 0.5,
        api: str = "auto",
        retry_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if api not in ("auto", "controller", "joystick"):
            raise DeviceError(f"api={api!r}: use 'auto', 'controller' or 'joystick'")
        if layout is not None and layout not in LAYOUTS:
            raise DeviceError(f"layout={layout!r}: use one of {', '.join(LAYOUTS)}")
        mapping = load_mapping_file(mapping_file) if mapping_file else None
        self.index = index
        self.name_filter = name
        self.forced_layout = layout or (mapping.layout if mapping else None)
        self.deadzone = mapping.deadzone if mapping and mapping.deadzone is not None else deadzone
        self.bindings = merged_bindings(mapping.bindings if mapping else {})
        self._raw_overrides = dict(mapping.raw) if mapping else {}
        self.precision_scale = precision_scale
        self.threshold = threshold
        self.api = api
        self.retry_interval_s = retry_interval_s
        self._clock = clock
        self._pygame = None
        self._controller_mod = None
        self._pad = None  # a pygame Controller or Joystick
        self._uses_controller_api = False
        self._instance_id: Optional[int] = None
        self.pad_name: Optional[str] = None
        self.layout: Optional[PadLayout] = None
        self.notice: Optional[str] = None
        self._raw: dict[str, str] = {}
        self._state = NEUTRAL
        self._event_presses: Optional[set[str]] = None  # None until the loop feeds events
        self._gripper = GripperLatch()
        self._lost_pending = False
        self._last_try = 0.0
        self._status = "not connected"

    # -- opening ---------------------------------------------------------
    def connect(self) -> None:
        import pygame

        self._pygame = pygame
        if not pygame.joystick.get_init():
            pygame.joystick.init()
        if self.api != "joystick":
            try:
                from pygame._sdl2 import controller

                if not controller.get_init():
                    controller.init()
                self._controller_mod = controller
            except (ImportError, AttributeError, pygame.error) as exc:
                if self.api == "controller":
                    raise DeviceError(f"pygame's game-controller API is unavailable ({exc}); use api='joystick'") from None
        count = pygame.joystick.get_count()
        if count == 0:
            raise DeviceError("no gamepad found: plug one in (or pair it), or run `teleop devices`")
        index = self._choose_index(count)
        self._open(index)

    def _choose_index(self, count: int) -> int:
        if self.index is not None:
            if not 0 <= self.index < count:
                raise DeviceError(f"gamepad index {self.index}: only {count} connected (0..{count - 1}); see `teleop devices`")
            return self.index
        if self.name_filter:
            for i in range(count):
                if self.name_filter.lower() in self._name_at(i).lower():
                    return i
            names = ", ".join(repr(self._name_at(i)) for i in range(count))
            raise DeviceError(f"no gamepad named like {self.name_filter!r}; connected: {names}")
        return 0

    def _name_at(self, index: int) -> str:
        return self._pygame.joystick.Joystick(index).get_name()

    def _open(self, index: int) -> None:
        pygame, controller = self._pygame, self._controller_mod
        use_controller = controller is not None and controller.is_controller(index)
        if self.api == "controller" and not use_controller:
            raise DeviceError(
                f"gamepad {self._name_at(index)!r} has no SDL game-controller mapping; use api='joystick' "
                "with a mapping file 'raw' table"
            )
        if use_controller:
            pad = controller.Controller(index)
            self.pad_name = pad.name
            self._instance_id = pad.as_joystick().get_instance_id()
        else:
            pad = pygame.joystick.Joystick(index)
            pad.init()
            self.pad_name = pad.get_name()
            self._instance_id = pad.get_instance_id()
        self._pad, self._uses_controller_api = pad, use_controller
        if self.forced_layout:
            self.layout, self.notice = LAYOUTS[self.forced_layout], None
        else:
            self.layout, self.notice = layout_for_name(self.pad_name)
            if self.notice:
                log.warning(self.notice)
        self._raw = {**self.layout.raw, **self._raw_overrides}
        # Baseline: a button already held when the pad appears is not a press.
        self._state = self.read_state()
        self._status = "connected"

    def _try_reopen(self) -> None:
        self._last_try = self._clock()
        for i in range(self._pygame.joystick.get_count()):
            if self._name_at(i) == self.pad_name:
                self._open(i)
                return

    def _lose(self) -> None:
        self._pad = None
        self._state = NEUTRAL  # never keep moving on the last reading
        self._lost_pending = True
        self._last_try = self._clock()
        self._status = "unplugged"

    # -- reading ---------------------------------------------------------
    def handle_events(self, events: Iterable) -> None:
        """Take this tick's pygame events (the ones the window drained)."""
        pygame = self._pygame
        if pygame is None:
            raise DeviceError("GamepadDevice.handle_events() before connect()")
        if self._event_presses is None:
            self._event_presses = set()
        removed = (pygame.CONTROLLERDEVICEREMOVED, pygame.JOYDEVICEREMOVED)
        for event in events:
            if getattr(event, "instance_id", None) != self._instance_id or self._pad is None:
                continue
            if event.type in removed:
                self._lose()
            elif self._uses_controller_api and event.type == pygame.CONTROLLERBUTTONDOWN:
                name = self._controller_button_names().get(event.button)
                if name:
                    self._event_presses.add(name)
            elif not self._uses_controller_api and event.type == pygame.JOYBUTTONDOWN:
                source = f"b{event.button}"
                self._event_presses.update(c for c, s in self._raw.items() if s == source and c in BUTTONS)

    def _controller_button_names(self) -> dict[int, str]:
        pg = self._pygame
        consts = {
            "a": pg.CONTROLLER_BUTTON_A, "b": pg.CONTROLLER_BUTTON_B, "x": pg.CONTROLLER_BUTTON_X,
            "y": pg.CONTROLLER_BUTTON_Y, "back": pg.CONTROLLER_BUTTON_BACK, "guide": pg.CONTROLLER_BUTTON_GUIDE,
            "start": pg.CONTROLLER_BUTTON_START, "leftstick": pg.CONTROLLER_BUTTON_LEFTSTICK,
            "rightstick": pg.CONTROLLER_BUTTON_RIGHTSTICK, "leftshoulder": pg.CONTROLLER_BUTTON_LEFTSHOULDER,
            "rightshoulder": pg.CONTROLLER_BUTTON_RIGHTSHOULDER, "dpup": pg.CONTROLLER_BUTTON_DPAD_UP,
            "dpdown": pg.CONTROLLER_BUTTON_DPAD_DOWN, "dpleft": pg.CONTROLLER_BUTTON_DPAD_LEFT,
            "dpright": pg.CONTROLLER_BUTTON_DPAD_RIGHT,
        }
        return {v: k for k, v in consts.items()}

    def read_state(self) -> PadState:
        """The pad's current sticks, triggers and held buttons."""
        pad, pg = self._pad, self._pygame
        if self._uses_controller_api:
            axis_ids = {
                "leftx": pg.CONTROLLER_AXIS_LEFTX, "lefty": pg.CONTROLLER_AXIS_LEFTY,
                "rightx": pg.CONTROLLER_AXIS_RIGHTX, "righty": pg.CONTROLLER_AXIS_RIGHTY,
                "lefttrigger": pg.CONTROLLER_AXIS_TRIGGERLEFT, "righttrigger": pg.CONTROLLER_AXIS_TRIGGERRIGHT,
            }
            axes = {name: max(-1.0, min(1.0, pad.get_axis(i) / 32767.0)) for name, i in axis_ids.items()}
            held = frozenset(name for i, name in self._controller_button_names().items() if pad.get_button(i))
            return PadState(axes, held)
        axes = dict(_NEUTRAL_AXES)
        held = set()
        for control, source in self._raw.items():
            value = read_raw_source(pad, source, trigger=control in TRIGGERS)
            if control in axes:
                axes[control] = value
            elif value >= 0.5:
                held.add(control)
        return PadState(axes, frozenset(held))

    def poll(self) -> Command:
        if self._pygame is None:
            raise DeviceError("GamepadDevice.poll() before connect()")
        if self._pad is None and self._status == "unplugged" and self._clock() - self._last_try >= self.retry_interval_s:
            self._try_reopen()
        if self._pad is not None and self._uses_controller_api and not self._pad.attached():
            self._lose()  # unplugged while nobody fed us the removal event
        actions: list[str] = []
        if self._pad is not None:
            state = self.read_state()
            actions = pad_actions(
                self._state, state, self.bindings, threshold=self.threshold, pressed=self._event_presses
            )
            if self._event_presses is not None:
                self._event_presses = set()
            self._state = state
        changed = self._gripper.apply(actions)
        events = set(events_for(actions, changed))
        if self._lost_pending:
            events.add(Event.DEVICE_LOST)
            self._lost_pending = False
        translation, rotation = pad_motion(
            self._state, self.bindings, deadzone=self.deadzone,
            precision_scale=self.precision_scale, threshold=self.threshold,
        )
        return Command(translation, rotation, self._gripper.target, frozenset(events))

    def reset(self) -> None:
        self._gripper.reset()

    def close(self) -> None:
        if self._pad is not None:
            self._pad.quit()
        self._pad = None
        self._status = "closed"

    def bindings_help(self) -> list[str]:
        """Short lines for the on-screen help, with the pad's own button labels.

        A stick bound to a motion moves both ways along it, so "Left stick" covers +y and -y.
        """
        layout = self.layout or LAYOUTS["generic"]
        label_for: dict[str, str] = {}
        for control, action in self.bindings.items():
            label = layout.labels.get(control, control)
            if control in STICKS and action in MOTION_ACTIONS:
                for signed in ("+" + action[1:], "-" + action[1:]):
                    label_for.setdefault(signed, label)
            else:
                label_for.setdefault(action, label)
        return help_lines(label_for)

    @property
    def connected(self) -> bool:
        return self._pad is not None

    @property
    def status(self) -> str:
        if self._status == "connected":
            via = "game controller" if self._uses_controller_api else "joystick"
            return f"connected: {self.pad_name} ({self.layout.name} layout, {via} API)"
        if self._status == "unplugged":
            return "unplugged (plug it back in to resume)"
        return self._status

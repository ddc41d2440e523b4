"""The action vocabulary that key, button and axis bindings refer to.

Keyboard, gamepad and SpaceMouse bindings all map a physical control to one of
these names, so a binding file reads the same whatever the device:

- motion: ``+x -x +y -y +z -z +rx -rx +ry -ry +rz -rz`` (view frame, see
  :class:`devices.base.Command`);
- ``precision``: while held, motion is scaled down for fine positioning;
- gripper: ``gripper_toggle``, ``gripper_open``, ``gripper_close``;
- discrete events: the values of :class:`devices.base.Event`
  (``toggle_record``, ``discard``, ``reset``, ``pause``, ``quit``,
  ``mark_success``, ``keep``, ``step``, ``slower``, ``faster``).

The gripper is latched here, in the driver, and every Command carries the
absolute target (-1 open, +1 closed). A toggle also puts
``Event.GRIPPER_TOGGLE`` into the command's events so the HUD can show it;
consumers should apply ``Command.gripper`` and treat that event as a notice,
never toggle a second time.
"""

from __future__ import annotations

from typing import Iterable

from devices.base import Event

AXES = ("x", "y", "z", "rx", "ry", "rz")
MOTION_ACTIONS = frozenset(sign + axis for axis in AXES for sign in "+-")
GRIPPER_ACTIONS = frozenset({"gripper_toggle", "gripper_open", "gripper_close"})
# GRIPPER_TOGGLE and DEVICE_LOST are produced by the drivers themselves, not bound.
EVENT_ACTIONS = {e.value: e for e in Event if e not in (Event.GRIPPER_TOGGLE, Event.DEVICE_LOST)}
MODIFIER_ACTIONS = frozenset({"precision"})
ALL_ACTIONS = frozenset(MOTION_ACTIONS | GRIPPER_ACTIONS | set(EVENT_ACTIONS) | MODIFIER_ACTIONS)

GRIPPER_OPEN = -1.0
GRIPPER_CLOSED = 1.0


def check_action(action: str, *, where: str) -> str:
    """Return ``action`` if it is known; otherwise raise ValueError naming ``where``."""
    if action not in ALL_ACTIONS:
        raise ValueError(
            f"{where}: unknown action {action!r}; use one of: {', '.join(sorted(ALL_ACTIONS))}"
        )
    return action


def motion_axis(action: str) -> tuple[int, float]:
    """``"-rz"`` -> (5, -1.0): the index into (x, y, z, rx, ry, rz) and the sign."""
    return AXES.index(action[1:]), (1.0 if action[0] == "+" else -1.0)


def clip_unit(value: float) -> float:
    return max(-1.0, min(1.0, value))


class GripperLatch:
    """Holds the gripper target between ticks so every Command carries it.

    It starts open, as the simulated gripper does after an environment reset.
    """

    def __init__(self) -> None:
        self.target = GRIPPER_OPEN

    def reset(self) -> None:
        self.target = GRIPPER_OPEN

    def apply(self, actions: Iterable[str]) -> bool:
        """Apply gripper actions in order; True when the target changed."""
        before = self.target
        for action in actions:
            if action == "gripper_toggle":
                self.target = GRIPPER_CLOSED if self.target == GRIPPER_OPEN else GRIPPER_OPEN
            elif action == "gripper_open":
                self.target = GRIPPER_OPEN
            elif action == "gripper_close":
                self.target = GRIPPER_CLOSED
        return self.target != before


def events_for(actions: Iterable[str], gripper_changed: bool) -> frozenset[Event]:
    """The Event set for one tick: bound event actions plus the gripper notice."""
    events = {EVENT_ACTIONS[a] for a in actions if a in EVENT_ACTIONS}
    if gripper_changed:
        events.add(Event.GRIPPER_TOGGLE)
    return frozenset(events)

# Short descriptions for on-screen help.
ACTION_TEXT = {
    "+x": "move right", "-x": "move left",
    "+y": "move up the screen", "-y": "move down the screen",
    "+z": "move up", "-z": "move down",
    "+rx": "tilt forward", "-rx": "tilt back",
    "+ry": "roll right", "-ry": "roll left",
    "+rz": "turn left", "-rz": "turn right",
    "precision": "hold for fine motion",
    "gripper_toggle": "open / close gripper",
    "gripper_open": "open gripper",
    "gripper_close": "close gripper",
    "toggle_record": "start / stop recording",
    "discard": "discard episode, same spawn",
    "keep": "keep episode",
    "mark_success": "mark success",
    "reset": "reset to a new spawn",
    "pause": "pause / resume",
    "step": "one step while paused",
    "slower": "slower",
    "faster": "faster",
    "quit": "quit",
}
ROTATION_ACTIONS = frozenset(a for a in MOTION_ACTIONS if a[1] == "r")

# The on-screen help: each line lists several bindings as "keys: what", joined by "  ".
# Motion on one axis shares an entry ("W/S: up/down the screen").
HELP_LINES = (
    ((("+y", "-y"), "up/down the screen"), (("-x", "+x"), "left/right")),
    ((("+z", "-z"), "raise/lower"), (("precision",), "fine")),
    ((("+rz", "-rz"), "turn left/right"), (("+rx", "-rx"), "tilt"), (("+ry", "-ry"), "roll")),
    ((("gripper_toggle",), "gripper"), (("gripper_open",), "open"), (("gripper_close",), "close"),
     (("toggle_record",), "start/stop")),
    ((("keep",), "keep"), (("discard",), "retry spawn"), (("reset",), "new spawn")),
    ((("pause",), "pause"), (("step",), "one step"), (("slower", "faster"), "speed"),
     (("mark_success",), "mark done")),
    ((("quit",), "quit"),),
)


def help_lines(label_for: dict[str, str]) -> list[str]:
    """The on-screen help from a device's label for each bound action (a key, a button, a stick).

    Entries whose actions are not all bound are left out: the help never lists a control that
    does nothing. Two actions with the same label (a stick's two directions) show it once.
    """
    lines = []
    for entries in HELP_LINES:
        parts: list[tuple[str, str]] = []  # (label, text)
        for actions, text in entries:
            if all(a in label_for for a in actions):
                label = "/".join(dict.fromkeys(label_for[a] for a in actions))
                if parts and parts[-1][0] == label:  # one stick for both axes: "Left stick: up/down, left/right"
                    parts[-1] = (label, f"{parts[-1][1]}, {text}")
                else:
                    parts.append((label, text))
        if parts:
            lines.append("  ".join(f"{label}: {text}" for label, text in parts))
    return lines

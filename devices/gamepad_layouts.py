"""Gamepad layouts, chosen by controller name, and the user's mapping override file.

Controls are named as SDL's game-controller API names them (``a`` is the
bottom face button, ``lefty`` grows downward, triggers run 0..1), so one set
of bindings works on every pad. When SDL knows the pad (its game-controller
database), SDL already puts every button in that standard place and the layout
only supplies the printed labels (Cross vs A). When it does not, the device
falls back to the raw joystick API and the layout's ``raw`` table says which
joystick axis/button/hat is which control: ``"a2"`` axis 2, ``"b5"``
button 5, ``"h0.4"`` hat 0 pointing down (1 up, 2 right, 4 down, 8 left).

Mapping file (JSON, or TOML on Python 3.11+), every key optional::

    {"layout": "playstation",            # force a layout
     "deadzone": 0.12,                   # radial stick deadzone
     "bindings": {"a": "gripper_toggle", "x": "none"},   # control -> action
     "raw": {"lefttrigger": "b6"}}       # joystick-API fallback only
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Mapping, Optional

from devices.actions import ALL_ACTIONS, MOTION_ACTIONS
from devices.base import DeviceError

STICKS = ("leftx", "lefty", "rightx", "righty")
TRIGGERS = ("lefttrigger", "righttrigger")
BUTTONS = (
    "a", "b", "x", "y", "back", "guide", "start", "leftstick", "rightstick",
    "leftshoulder", "rightshoulder", "dpup", "dpdown", "dpleft", "dpright",
)
CONTROLS = STICKS + TRIGGERS + BUTTONS
RAW_SOURCE = re.compile(r"^(a\d+|b\d+|h\d+\.(1|2|4|8))$")

# Control -> action. A stick binds its positive direction (right, or down:
# SDL's y grows toward the operator), so pushing the left stick up gives -lefty
# -> "+y" (away). Triggers and buttons may bind any action; a trigger bound to
# a gripper or event action fires when it crosses the threshold.
# MetaWorld's actions have no rotation, so the right stick's x axis is left unbound.
DEFAULT_PAD_BINDINGS: dict[str, str] = {
    "leftx": "+x",
    "lefty": "-y",
    "righty": "-z",
    "dpup": "+z",
    "dpdown": "-z",
    "dpleft": "slower",
    "dpright": "faster",
    "lefttrigger": "gripper_open",
    "righttrigger": "gripper_close",
    "a": "gripper_toggle",
    "leftshoulder": "precision",
    "rightshoulder": "keep",
    "start": "toggle_record",
    "back": "discard",
    "b": "mark_success",
    "x": "pause",
    "y": "reset",
}

_STANDARD_LABELS = {
    "leftx": "Left stick", "lefty": "Left stick", "rightx": "Right stick", "righty": "Right stick",
    "leftstick": "Left stick click", "rightstick": "Right stick click",
    "dpup": "D-pad up", "dpdown": "D-pad down", "dpleft": "D-pad left", "dpright": "D-pad right",
}


@dataclass(frozen=True)
class PadLayout:
    name: str
    patterns: tuple[str, ...]  # lower-case substrings of the controller name that select it
    labels: Mapping[str, str]  # control -> what is printed on the pad
    raw: Mapping[str, str]  # control -> joystick source, for pads SDL has no mapping for


LAYOUTS: dict[str, PadLayout] = {
    # Linux xpad driver order; also what XInput pads report elsewhere.
    "xbox": PadLayout(
        "xbox",
        ("xbox", "x-box", "xinput", "microsoft"),
        {**_STANDARD_LABELS, "a": "A", "b": "B", "x": "X", "y": "Y", "back": "View", "start": "Menu",
         "guide": "Xbox", "leftshoulder": "LB", "rightshoulder": "RB", "lefttrigger": "LT", "righttrigger": "RT"},
        {"leftx": "a0", "lefty": "a1", "lefttrigger": "a2", "rightx": "a3", "righty": "a4", "righttrigger": "a5",
         "a": "b0", "b": "b1", "x": "b2", "y": "b3", "leftshoulder": "b4", "rightshoulder": "b5",
         "back": "b6", "start": "b7", "guide": "b8", "leftstick": "b9", "rightstick": "b10",
         "dpup": "h0.1", "dpright": "h0.2", "dpdown": "h0.4", "dpleft": "h0.8"},
    ),
    # Linux hid-sony / hid-playstation order (DualShock 4, DualSense).
    "playstation": PadLayout(
        "playstation",
        # "Wireless Controller" is what older Linux kernels call a DualShock 4;
        # Xbox pads named "Xbox Wireless Controller" match the xbox row first.
        ("playstation", "ps3", "ps4", "ps5", "dualshock", "dualsense", "sony", "wireless controller"),
        {**_STANDARD_LABELS, "a": "Cross", "b": "Circle", "x": "Square", "y": "Triangle", "back": "Share",
         "start": "Options", "guide": "PS", "leftshoulder": "L1", "rightshoulder": "R1",
         "lefttrigger": "L2", "righttrigger": "R2"},
        {"leftx": "a0", "lefty": "a1", "lefttrigger": "a2", "rightx": "a3", "righty": "a4", "righttrigger": "a5",
         "a": "b0", "b": "b1", "y": "b2", "x": "b3", "leftshoulder": "b4", "rightshoulder": "b5",
         "back": "b8", "start": "b9", "guide": "b10", "leftstick": "b11", "rightstick": "b12",
         "dpup": "h0.1", "dpright": "h0.2", "dpdown": "h0.4", "dpleft": "h0.8"},
    ),
    # DirectInput-style pads (Logitech in D mode and most cheap USB pads):
    # digital triggers, face buttons numbered left, bottom, right, top.
    "generic": PadLayout(
        "generic",
        (),
        {**_STANDARD_LABELS, "a": "bottom button", "b": "right button", "x": "left button", "y": "top button",
         "back": "Select", "start": "Start", "guide": "Home", "leftshoulder": "L1", "rightshoulder": "R1",
         "lefttrigger": "L2", "righttrigger": "R2"},
        {"leftx": "a0", "lefty": "a1", "rightx": "a2", "righty": "a3",
         "x": "b0", "a": "b1", "b": "b2", "y": "b3", "leftshoulder": "b4", "rightshoulder": "b5",
         "lefttrigger": "b6", "righttrigger": "b7", "back": "b8", "start": "b9",
         "leftstick": "b10", "rightstick": "b11",
         "dpup": "h0.1", "dpright": "h0.2", "dpdown": "h0.4", "dpleft": "h0.8"},
    ),
}


def layout_for_name(controller_name: str) -> tuple[PadLayout, Optional[str]]:
    """The layout whose pattern occurs in the name; generic plus a notice when none does."""
    lowered = controller_name.lower()
    for layout in LAYOUTS.values():
        if any(p in lowered for p in layout.patterns):
            return layout, None
    return LAYOUTS["generic"], (
        f"unknown gamepad {controller_name!r}: using the generic layout; "
        "set layout='xbox' or 'playstation', or give a mapping file, if buttons are wrong"
    )


@dataclass
class PadMapping:
    """Everything a mapping file can change."""

    layout: Optional[str] = None
    deadzone: Optional[float] = None
    bindings: dict[str, str] = field(default_factory=dict)  # "none" unbinds
    raw: dict[str, str] = field(default_factory=dict)


def _fail(path: str, key: str, problem: str, fix: str) -> DeviceError:
    return DeviceError(f"gamepad mapping file {path}: key '{key}': {problem}; {fix}")


def _read(path: str) -> dict:
    if not os.path.isfile(path):
        raise DeviceError(f"gamepad mapping file {path}: not found; give an existing .json or .toml file")
    ext = os.path.splitext(path)[1].lower()
    with open(path, "rb") as f:
        raw = f.read()
    if ext == ".json":
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DeviceError(f"gamepad mapping file {path}: not valid JSON ({exc}); fix the syntax") from None
    elif ext == ".toml":
        try:
            import tomllib
        except ImportError:
            raise DeviceError(f"gamepad mapping file {path}: TOML needs Python 3.11+; use a .json file") from None
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise DeviceError(f"gamepad mapping file {path}: not valid TOML ({exc}); fix the syntax") from None
    else:
        raise DeviceError(f"gamepad mapping file {path}: unknown extension {ext!r}; name it .json or .toml")
    if not isinstance(data, dict):
        raise DeviceError(f"gamepad mapping file {path}: the top level must be a table/object of keys")
    return data


def load_mapping_file(path: str) -> PadMapping:
    """Read and check a mapping file; any problem raises a one-line DeviceError naming file and key."""
    path = str(path)
    data = _read(path)
    mapping = PadMapping()
    allowed = ("layout", "deadzone", "bindings", "raw")
    for key in data:
        if key not in allowed:
            raise _fail(path, key, "unknown key", f"use only: {', '.join(allowed)}")
    if "layout" in data:
        if data["layout"] not in LAYOUTS:
            raise _fail(path, "layout", f"unknown layout {data['layout']!r}", f"use one of: {', '.join(LAYOUTS)}")
        mapping.layout = data["layout"]
    if "deadzone" in data:
        dz = data["deadzone"]
        if isinstance(dz, bool) or not isinstance(dz, (int, float)) or not 0.0 <= dz < 1.0:
            raise _fail(path, "deadzone", f"{dz!r} is not a number in [0, 1)", "use e.g. 0.15")
        mapping.deadzone = float(dz)
    for section in ("bindings", "raw"):
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise _fail(path, section, "must be a table/object", f'write e.g. {section} = {{"a": ...}}')
        for control, value in table.items():
            where = f"{section}.{control}"
            if control not in CONTROLS:
                raise _fail(path, where, "unknown control", f"use one of: {', '.join(CONTROLS)}")
            if not isinstance(value, str):
                raise _fail(path, where, f"{value!r} is not a string", "quote the value")
            if section == "bindings":
                if value != "none" and value not in ALL_ACTIONS:
                    raise _fail(path, where, f"unknown action {value!r}",
                                f"use 'none' or one of: {', '.join(sorted(ALL_ACTIONS))}")
                if control in STICKS and value != "none" and value not in MOTION_ACTIONS:
                    raise _fail(path, where, f"a stick can only move, not {value!r}",
                                "bind a motion such as '+x' or '-z', or 'none'")
                mapping.bindings[control] = value
            else:
                if not RAW_SOURCE.match(value):
                    raise _fail(path, where, f"bad joystick source {value!r}",
                                "use 'a<axis>', 'b<button>' or 'h<hat>.<1|2|4|8>', e.g. 'b6'")
                mapping.raw[control] = value
    return mapping


def merged_bindings(overrides: Mapping[str, str]) -> dict[str, str]:
    """Default bindings with the file's entries applied; 'none' removes a binding."""
    bindings = dict(DEFAULT_PAD_BINDINGS)
    for control, action in overrides.items():
        if action == "none":
            bindings.pop(control, None)
        else:
            bindings[control] = action
    return bindings

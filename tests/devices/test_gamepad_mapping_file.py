"""The gamepad mapping override file: what it changes, and one-line errors for bad files."""

import json

import pytest

from devices.base import DeviceError, Event
from devices.gamepad import GamepadDevice
from devices.gamepad_layouts import DEFAULT_PAD_BINDINGS, load_mapping_file, merged_bindings


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_json_and_toml_files_load_the_same(tmp_path):
    as_json = write(tmp_path, "pad.json", json.dumps(
        {"layout": "playstation", "deadzone": 0.2, "bindings": {"x": "gripper_toggle", "a": "none"},
         "raw": {"lefttrigger": "b6"}}))
    as_toml = write(tmp_path, "pad.toml", 'layout = "playstation"\ndeadzone = 0.2\n'
                    '[bindings]\nx = "gripper_toggle"\na = "none"\n[raw]\nlefttrigger = "b6"\n')
    assert load_mapping_file(as_json) == load_mapping_file(as_toml)
    bindings = merged_bindings(load_mapping_file(as_json).bindings)
    assert bindings["x"] == "gripper_toggle" and "a" not in bindings
    assert bindings["leftx"] == DEFAULT_PAD_BINDINGS["leftx"]


@pytest.mark.parametrize("name, text, message", [
    ("pad.json", '{"bindings": {"a": "grab"}}', r"key 'bindings.a': unknown action 'grab'; use 'none' or one of"),
    ("pad.json", '{"bindings": {"trigger": "pause"}}', r"key 'bindings.trigger': unknown control; use one of"),
    ("pad.json", '{"bindings": {"leftx": "pause"}}', r"key 'bindings.leftx': a stick can only move"),
    ("pad.json", '{"raw": {"a": "button0"}}', r"key 'raw.a': bad joystick source 'button0'; use 'a<axis>'"),
    ("pad.json", '{"deadzone": 2}', r"key 'deadzone': 2 is not a number in \[0, 1\)"),
    ("pad.json", '{"layout": "nintendo"}', r"key 'layout': unknown layout 'nintendo'; use one of: xbox"),
    ("pad.json", '{"colour": "red"}', r"key 'colour': unknown key; use only: layout"),
    ("pad.json", '{"bindings": {"a": 3}}', r"key 'bindings.a': 3 is not a string; quote the value"),
    ("pad.json", '{"bindings": {', r"not valid JSON .*; fix the syntax"),
    ("pad.toml", 'bindings = [', r"not valid TOML .*; fix the syntax"),
    ("pad.yaml", 'a: b', r"unknown extension '.yaml'; name it .json or .toml"),
])
def test_bad_files_give_one_line_errors_naming_file_and_key(tmp_path, name, text, message):
    path = write(tmp_path, name, text)
    with pytest.raises(DeviceError, match=message) as info:
        load_mapping_file(path)
    assert path in str(info.value) and "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DeviceError, match="not found"):
        GamepadDevice(mapping_file=str(tmp_path / "nope.json"))


def test_file_rebinds_a_real_pad(tmp_path, virtual_pads, pygame_headless):
    pg = pygame_headless
    path = write(tmp_path, "pad.json", json.dumps({"bindings": {"a": "none", "x": "gripper_toggle"}, "deadzone": 0.5}))
    pad = virtual_pads("Xbox 360 Controller", 0x045E, 0x028E)
    with GamepadDevice(mapping_file=path) as device:
        assert device.deadzone == 0.5
        pad.button(0, True)  # A: unbound now
        device.handle_events(pg.event.get())
        assert device.poll().gripper == -1.0
        pad.button(2, True)  # X: the gripper
        pad.axis(0, 13000)  # inside the 0.5 deadzone
        device.handle_events(pg.event.get())
        cmd = device.poll()
        assert cmd.gripper == 1.0 and Event.GRIPPER_TOGGLE in cmd.events
        assert cmd.translation == (0.0, 0.0, 0.0)


def test_raw_override_moves_a_control_on_the_joystick_api(tmp_path, virtual_pads, pygame_headless):
    pg = pygame_headless
    path = write(tmp_path, "pad.json", json.dumps({"raw": {"start": "b11"}}))
    pad = virtual_pads("Xbox 360 pad", 0x1234, 0x0003, kind="joystick", naxes=6, nbuttons=12, nhats=1)
    with GamepadDevice(api="joystick", mapping_file=path) as device:
        pad.button(7, True)  # where Start normally is
        device.handle_events(pg.event.get())
        assert device.poll().events == frozenset()
        pad.button(11, True)
        device.handle_events(pg.event.get())
        assert device.poll().events == {Event.TOGGLE_RECORD}

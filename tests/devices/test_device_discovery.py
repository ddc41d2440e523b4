"""Discovery with nothing connected, with SpaceMice (fake hidapi) and with a virtual pad; the registry; udev rules."""

import os
import re
import subprocess
import sys

import pytest

from devices.base import Device, DeviceError
from devices.discovery import format_devices, guid_vid_pid, list_devices, list_gamepads, list_spacemice
from devices.registry import DEVICE_FACTORIES, make_device, register_device
from devices.spacemouse import LAYOUTS, UDEV_RULES
from devices.stand_ins import COMPACT, FakeHid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_nothing_connected_gives_an_empty_list(pygame_headless):
    import hid

    assert hid.enumerate() == []  # this machine has no HID devices
    assert list_devices() == []
    assert format_devices([]) == ["no SpaceMouse or gamepad found (the keyboard always works)"]


def test_spacemice_are_listed_with_permission_problems_explained():
    hid = FakeHid(COMPACT, (0x256F, 0xC62E), denied=[b"/dev/hidraw1"])
    hid.plug(0x046D, 0xC52B, path=b"/dev/hidraw5")  # a Logitech receiver: not a SpaceMouse
    records = list_spacemice(hid)
    assert [(r.name, r.vid_pid, r.path, r.can_open) for r in records] == [
        ("SpaceMouse Compact", "256f:c635", "/dev/hidraw0", True),
        ("SpaceMouse Wireless (cabled)", "256f:c62e", "/dev/hidraw1", False),
    ]
    assert records[0].problem is None and "udev" in records[1].problem
    assert hid.opened == [b"/dev/hidraw0"]  # opened once to check, then closed
    lines = format_devices(records)
    assert "cannot open" in lines[1] and "udev" in lines[2]


def test_gamepads_are_listed_with_vendor_and_product(virtual_pads):
    virtual_pads("PS4 Controller", 0x054C, 0x09CC)
    records = list_gamepads()
    assert [(r.kind, r.name, r.vid_pid, r.can_open) for r in records] == [("gamepad", "PS4 Controller", "054c:09cc", True)]
    assert guid_vid_pid("not hex") == ""


def test_udev_rules_cover_every_model():
    rules = open(UDEV_RULES).read()
    for vid, pid in LAYOUTS:
        if vid == 0x046D:
            assert f'ATTRS{{idProduct}}=="{pid:04x}"' in rules
    assert re.search(r'KERNEL=="hidraw\*", ATTRS\{idVendor\}=="256f"', rules)
    assert 'TAG+="uaccess"' in rules
    assert not re.search(r'ATTRS\{idVendor\}=="046d", MODE', rules)  # never every Logitech device


def test_registry_builds_each_device_without_touching_hardware():
    assert set(DEVICE_FACTORIES) >= {"keyboard", "gamepad", "spacemouse", "scripted"}
    device = make_device("spacemouse", hid_api=FakeHid(), deadzone=0.1)
    assert isinstance(device, Device) and device.deadzone == 0.1 and device.status == "not connected"
    assert make_device("keyboard").name == "keyboard"
    assert make_device("gamepad", layout="xbox").forced_layout == "xbox"
    with pytest.raises(DeviceError, match="unknown device 'joystick'; use one of: corrector, gamepad, humanlike, keyboard"):
        make_device("joystick")
    with pytest.raises(DeviceError, match="device 'keyboard'.*unexpected keyword argument 'speed'"):
        make_device("keyboard", speed=2)


def test_register_device_adds_a_kind():
    class Scripted(Device):
        name = "scripted"

    register_device("scripted-test", Scripted)
    try:
        assert isinstance(make_device("scripted-test"), Scripted)
    finally:
        del DEVICE_FACTORIES["scripted-test"]


def test_importing_devices_loads_neither_pygame_nor_hid_nor_teleop():
    code = (
        "import sys, devices.keyboard, devices.gamepad, devices.spacemouse, devices.discovery, devices.registry\n"
        "bad = [m for m in ('pygame', 'hid', 'hidraw', 'teleop', 'act') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_real_hidapi_with_nothing_plugged_in_fails_loudly():
    from devices.spacemouse import SpaceMouseDevice

    with pytest.raises(DeviceError, match="no SpaceMouse found: plug it in, or run `teleop devices`"):
        SpaceMouseDevice().connect()

"""SpaceMouse decoding and device behaviour against a fake hidapi that replays report bytes."""

import pytest

from devices.actions import ALL_ACTIONS
from devices.base import DeviceError, Event
from devices.stand_ins import COMPACT, END_OF_TICK, ENTERPRISE, PRO, READ_ERROR, WIRELESS, FakeHid, buttons, report
from devices.spacemouse import (
    LAYOUTS,
    SpaceMouseDevice,
    SpaceMouseState,
    decode_report,
    find_spacemice,
    to_view,
)

def open_device(hid, **kwargs):
    device = SpaceMouseDevice(hid_api=hid, deadzone=0.0, **kwargs)
    device.connect()
    return device


# -- pure decoding --------------------------------------------------------


def test_split_reports_fill_translation_then_rotation():
    layout = LAYOUTS[COMPACT]
    state = decode_report(layout, report(1, 175, -350, 35), SpaceMouseState())
    assert state.axes == pytest.approx((0.5, -1.0, 0.1, 0.0, 0.0, 0.0))
    state = decode_report(layout, report(2, -70, 0, 350), state)
    assert state.axes == pytest.approx((0.5, -1.0, 0.1, -0.2, 0.0, 1.0))


def test_combined_report_fills_all_six_axes():
    state = decode_report(LAYOUTS[WIRELESS], report(1, 10, 20, 30, 40, 50, 60), SpaceMouseState())
    assert state.axes == pytest.approx(tuple(v / 350 for v in (10, 20, 30, 40, 50, 60)))


def test_layout_not_length_decides_the_format():
    # Windows pads split reports to 13 bytes: the tail must not become rotation.
    padded = report(1, 100, 0, 0) + [0x7F] * 6
    state = decode_report(LAYOUTS[COMPACT], padded, SpaceMouseState(axes=(0, 0, 0, 0.5, 0.5, 0.5)))
    assert state.axes == pytest.approx((100 / 350, 0, 0, 0.5, 0.5, 0.5))
    # A combined model ignores a truncated report instead of reading garbage.
    assert decode_report(LAYOUTS[WIRELESS], report(1, 100, 0, 0), SpaceMouseState()) == SpaceMouseState()


def test_values_beyond_full_scale_are_clipped():
    state = decode_report(LAYOUTS[COMPACT], report(1, 500, -32768, 351), SpaceMouseState())
    assert state.axes[:3] == (1.0, -1.0, 1.0)


def test_unknown_reports_change_nothing():
    before = SpaceMouseState(axes=(0.1,) * 6, buttons=1)
    assert decode_report(LAYOUTS[WIRELESS], [0x17, 0x55], before) == before  # battery level
    assert decode_report(LAYOUTS[WIRELESS], [], before) == before


def test_hid_frame_becomes_view_frame():
    # HID: +Y toward the user, +Z down. View: +y away, +z up.
    state = SpaceMouseState(axes=(0.5, 0.5, 0.5, 0.5, 0.5, 0.5))
    translation, rotation = to_view(state, LAYOUTS[COMPACT], deadzone=0.0)
    assert translation == pytest.approx((0.5, -0.5, -0.5))
    assert rotation == pytest.approx((0.5, -0.5, -0.5))


def test_deadzone_kills_drift_and_rescales():
    state = SpaceMouseState(axes=(0.05, -0.09, 1.0, 0.0, 0.0, 0.55))
    translation, rotation = to_view(state, LAYOUTS[COMPACT], deadzone=0.1)
    assert translation[0] == 0.0 and translation[1] == 0.0
    assert translation[2] == pytest.approx(-1.0)
    assert rotation[2] == pytest.approx(-0.5)


def test_every_model_in_facts_is_in_the_table_with_a_valid_format():
    split = {(0x046D, p) for p in (0xC626, 0xC627, 0xC625, 0xC629, 0xC62B)} | {(0x256F, 0xC635)}
    combined = {(0x256F, p) for p in (0xC62E, 0xC62F, 0xC63A, 0xC632, 0xC638, 0xC633, 0xC652)}
    assert {k for k, v in LAYOUTS.items() if v.report_format == "split"} == split
    assert {k for k, v in LAYOUTS.items() if v.report_format == "combined"} == combined
    for layout in LAYOUTS.values():
        assert set(layout.button_actions) <= set(layout.buttons), layout.name
        assert set(layout.button_actions.values()) <= ALL_ACTIONS, layout.name
        assert "gripper_toggle" in layout.button_actions.values()


# -- the device -----------------------------------------------------------


@pytest.mark.parametrize("ids, reports", [
    (COMPACT, [report(1, 350, 0, 0), report(2, 0, 0, -350)]),
    (PRO, [report(1, 350, 0, 0), report(2, 0, 0, -350)]),
    (WIRELESS, [report(1, 350, 0, 0, 0, 0, -350)]),
    (ENTERPRISE, [report(1, 350, 0, 0, 0, 0, -350)]),
])
def test_each_family_moves_right_and_turns(ids, reports):
    hid = FakeHid(ids)
    device = open_device(hid)
    hid.feed(b"/dev/hidraw0", *reports)
    cmd = device.poll()
    assert cmd.translation == pytest.approx((1.0, 0.0, 0.0))
    assert cmd.rotation == pytest.approx((0.0, 0.0, 1.0))  # HID -Rz is +rz about "up"
    assert device.status == f"connected: {LAYOUTS[ids].name}"


def test_poll_reads_all_pending_reports_and_keeps_the_newest():
    hid = FakeHid(COMPACT)
    device = open_device(hid)
    hid.feed(b"/dev/hidraw0", *[report(1, 0, -v, 0) for v in range(0, 351, 50)], END_OF_TICK, report(1, 0, 0, 0))
    assert device.poll().translation == pytest.approx((0.0, 1.0, 0.0))  # -350 HID toward = away
    assert device.poll().translation == (0.0, 0.0, 0.0)  # the next tick's report


def test_two_button_models_toggle_gripper_and_record():
    hid = FakeHid(WIRELESS)
    device = open_device(hid)
    hid.feed(b"/dev/hidraw0", buttons(1), buttons(0))  # left tapped within one tick
    cmd = device.poll()
    assert cmd.gripper == 1.0 and cmd.events == {Event.GRIPPER_TOGGLE}
    hid.feed(b"/dev/hidraw0", buttons(2))
    cmd = device.poll()
    assert cmd.events == {Event.TOGGLE_RECORD} and cmd.gripper == 1.0
    assert device.poll().events == frozenset()  # still held: no repeat


def test_pro_buttons_use_the_multibyte_bitfield():
    hid = FakeHid(PRO)
    device = open_device(hid)
    hid.feed(b"/dev/hidraw0", buttons(0x01, 0, 0, 0))  # MENU (byte 1 bit 0): unbound
    assert device.poll().events == frozenset()
    hid.feed(b"/dev/hidraw0", buttons(0, 0x10 | 0x40, 0, 0))  # keys 1 and 3 (byte 2 bits 4, 6)
    cmd = device.poll()
    assert cmd.events == {Event.GRIPPER_TOGGLE, Event.DISCARD} and cmd.gripper == 1.0


def test_unplug_goes_idle_once_then_replug_resumes(clock):
    hid = FakeHid(COMPACT)
    device = open_device(hid, clock=clock, retry_interval_s=0.5)
    hid.feed(b"/dev/hidraw0", report(1, 200, 0, 0), END_OF_TICK, READ_ERROR)
    assert device.poll().translation[0] > 0.5
    hid.unplug(b"/dev/hidraw0")
    lost = device.poll()
    assert lost.translation == (0.0, 0.0, 0.0) and lost.events == {Event.DEVICE_LOST}
    assert not device.connected and device.status.startswith("unplugged")
    assert device.poll().events == frozenset()  # reported once
    # Plugged back in under a new hidraw node; found only after the retry interval.
    hid.plug(*COMPACT, path=b"/dev/hidraw7")
    hid.feed(b"/dev/hidraw7", report(1, 0, 0, -350))
    assert device.poll().translation == (0.0, 0.0, 0.0)
    assert not device.connected  # retry interval not yet over
    clock.advance(0.6)
    cmd = device.poll()
    assert device.connected and device.status.startswith("connected")
    assert cmd.translation == pytest.approx((0.0, 0.0, 1.0))


def test_several_spacemice_are_told_apart_by_path():
    hid = FakeHid(COMPACT, WIRELESS)
    device = open_device(hid, path="/dev/hidraw1")
    assert device.layout.name.startswith("SpaceMouse Wireless")
    hid.feed(b"/dev/hidraw0", report(1, 350, 0, 0))
    assert device.poll().translation == (0.0, 0.0, 0.0)  # the other unit's motion
    with pytest.raises(DeviceError, match="no SpaceMouse at path /dev/hidraw9"):
        open_device(hid, path=b"/dev/hidraw9")


def test_construction_touches_no_hardware_and_connect_fails_loudly():
    hid = FakeHid()
    device = SpaceMouseDevice(hid_api=hid)
    assert hid.opened == [] and device.status == "not connected"
    with pytest.raises(DeviceError, match=r"no SpaceMouse found: plug it in, or run `teleop devices`"):
        device.connect()
    with pytest.raises(DeviceError, match="before connect"):
        device.poll()


def test_unknown_3dconnexion_product_is_named_in_the_error():
    hid = FakeHid((0x256F, 0xC6FF))
    with pytest.raises(DeviceError, match="256f:c6ff.*LAYOUTS"):
        SpaceMouseDevice(hid_api=hid).connect()


def test_open_failure_explains_the_udev_rule():
    hid = FakeHid(COMPACT, denied=[b"/dev/hidraw0"])
    with pytest.raises(DeviceError, match="udev") as info:
        SpaceMouseDevice(hid_api=hid).connect()
    assert "99-3dconnexion.rules" in str(info.value)


def test_find_spacemice_keeps_the_multi_axis_interface_only():
    entries = [
        {"path": b"a", "vendor_id": 0x256F, "product_id": 0xC652, "serial_number": "", "usage_page": 12, "usage": 1},
        {"path": b"b", "vendor_id": 0x256F, "product_id": 0xC652, "serial_number": "", "usage_page": 1, "usage": 8},
        {"path": b"c", "vendor_id": 0x046D, "product_id": 0xC52B, "serial_number": "", "usage_page": 1, "usage": 2},
    ]
    assert [e["path"] for e in find_spacemice(entries)] == [b"b"]


def test_context_manager_closes_the_handle():
    hid = FakeHid(COMPACT)
    with SpaceMouseDevice(hid_api=hid) as device:
        assert device.connected
    assert not device.connected and device.status == "closed"

"""Gamepad device against real SDL virtual joysticks (pygame's own SDL2 through ctypes)."""

import pytest

from devices.base import DeviceError, Event
from devices.gamepad import NEUTRAL, GamepadDevice, PadState, pad_actions, pad_motion, radial_deadzone
from devices.gamepad_layouts import DEFAULT_PAD_BINDINGS, LAYOUTS, layout_for_name

# SDL's virtual game controller: axes leftx lefty rightx righty lefttrigger righttrigger,
# buttons a b x y back guide start leftstick rightstick leftshoulder rightshoulder dpad...
LEFTX, LEFTY, RIGHTX, RIGHTY, LT, RT = range(6)
A, B, X, Y, BACK, GUIDE, START = range(7)
LEFTSHOULDER = 9


def _tick(pygame, device):
    device.handle_events(pygame.event.get())
    return device.poll()


# -- pure mapping ---------------------------------------------------------


def test_radial_deadzone_is_round_and_rescaled():
    assert radial_deadzone(0.1, 0.1, 0.2) == (0.0, 0.0)
    x, y = radial_deadzone(0.6, 0.0, 0.2)
    assert (x, y) == pytest.approx((0.5, 0.0))
    x, y = radial_deadzone(0.707, 0.707, 0.2)  # full diagonal keeps its direction
    assert x == pytest.approx(y) and x == pytest.approx(0.7071, abs=1e-3)


def test_stick_directions_follow_the_view_frame():
    def move(**axes):
        state = PadState({**NEUTRAL.axes, **axes})
        return pad_motion(state, DEFAULT_PAD_BINDINGS, deadzone=0.0, precision_scale=0.3)[0]

    assert move(leftx=1.0) == pytest.approx((1.0, 0.0, 0.0))  # right
    assert move(lefty=-1.0) == pytest.approx((0.0, 1.0, 0.0))  # stick pushed up: away
    assert move(righty=-1.0) == pytest.approx((0.0, 0.0, 1.0))  # up
    # Diagonals stay inside the unit circle: the same top speed in every direction.
    assert move(leftx=1.0, lefty=-1.0) == pytest.approx((0.7071, 0.7071, 0.0), abs=1e-4)
    precise = PadState({**NEUTRAL.axes, "leftx": 1.0}, frozenset({"leftshoulder"}))
    translation, _ = pad_motion(precise, DEFAULT_PAD_BINDINGS, deadzone=0.0, precision_scale=0.3)
    assert translation == pytest.approx((0.3, 0.0, 0.0))


def test_triggers_fire_on_crossing_and_buttons_on_press():
    half = PadState({**NEUTRAL.axes, "righttrigger": 0.4})
    full = PadState({**NEUTRAL.axes, "righttrigger": 0.9}, frozenset({"start"}))
    assert pad_actions(NEUTRAL, half, DEFAULT_PAD_BINDINGS) == []
    assert pad_actions(half, full, DEFAULT_PAD_BINDINGS) == ["gripper_close", "toggle_record"]
    assert pad_actions(full, full, DEFAULT_PAD_BINDINGS) == []
    assert pad_actions(full, full, DEFAULT_PAD_BINDINGS, pressed={"y"}) == ["reset"]


def test_layout_chosen_by_name():
    assert layout_for_name("Xbox 360 Controller") == (LAYOUTS["xbox"], None)
    assert layout_for_name("Xbox Wireless Controller")[0].name == "xbox"
    assert layout_for_name("Sony Interactive Entertainment Wireless Controller")[0].name == "playstation"
    assert layout_for_name("PS5 Controller")[0].name == "playstation"
    layout, notice = layout_for_name("USB Gamepad")
    assert layout.name == "generic" and "unknown gamepad 'USB Gamepad'" in notice


# -- real SDL virtual pads ------------------------------------------------


def test_xbox_pad_through_the_game_controller_api(virtual_pads, pygame_headless, clock):
    pg = pygame_headless
    pad = virtual_pads("Xbox 360 Controller", 0x045E, 0x028E)
    with GamepadDevice(clock=clock, deadzone=0.1) as device:
        assert device.layout.name == "xbox"
        assert device.status == "connected: Xbox 360 Controller (xbox layout, game controller API)"
        assert _tick(pg, device).translation == (0.0, 0.0, 0.0)
        pad.axis(LEFTX, 32767).axis(LEFTY, -32768).axis(RIGHTY, 32767)
        cmd = _tick(pg, device)
        assert cmd.translation == pytest.approx((0.7071, 0.7071, -1.0), abs=2e-3)  # radial: diagonal is clipped to 1
        pad.axis(LEFTX, 0).axis(LEFTY, 0).axis(RIGHTY, 0).axis(RT, 32767)
        cmd = _tick(pg, device)
        assert cmd.gripper == 1.0 and Event.GRIPPER_TOGGLE in cmd.events
        pad.axis(RT, 0).axis(LT, 32767)
        assert _tick(pg, device).gripper == -1.0
        help_text = "\n".join(device.bindings_help())
        assert "LT: open" in help_text and "Left stick: up/down the screen, left/right" in help_text


def test_short_press_between_polls_counts_once_from_events(virtual_pads, pygame_headless, clock):
    pg = pygame_headless
    pad = virtual_pads("Xbox One S Controller", 0x045E, 0x02EA)
    with GamepadDevice(clock=clock) as device:
        _tick(pg, device)
        pad.button(START, True)
        pg.event.pump()  # someone pumps mid-tick: state sees it, events wait in the queue
        pad.button(START, False)
        cmd = _tick(pg, device)
        assert cmd.events == {Event.TOGGLE_RECORD}
        assert _tick(pg, device).events == frozenset()


def test_buttons_without_events_use_state_edges(virtual_pads, pygame_headless, clock):
    pg = pygame_headless
    pad = virtual_pads("Xbox 360 Controller", 0x045E, 0x028E)
    with GamepadDevice(clock=clock) as device:
        pad.button(A, True)
        pg.event.pump()
        first = device.poll()
        assert first.gripper == 1.0 and first.events == {Event.GRIPPER_TOGGLE}
        pg.event.pump()
        assert device.poll().events == frozenset()


def test_playstation_pad_gets_playstation_labels(virtual_pads, pygame_headless, clock):
    pg = pygame_headless
    pad = virtual_pads("PS4 Controller", 0x054C, 0x09CC)
    with GamepadDevice(clock=clock) as device:
        assert device.layout.name == "playstation"
        pad.button(Y, True).button(B, True)
        assert _tick(pg, device).events == {Event.RESET, Event.MARK_SUCCESS}
        help_text = "\n".join(device.bindings_help())
        assert "Triangle: new spawn" in help_text and "R2: close" in help_text


def test_joystick_api_uses_each_layouts_raw_table(virtual_pads, pygame_headless, clock):
    """Without an SDL mapping, button 2 is X on an Xbox pad but Triangle on a PlayStation pad."""
    pg = pygame_headless
    for name, expected in (("Sony DualShock 4", Event.RESET), ("Microsoft X-Box pad", Event.PAUSE)):
        pad = virtual_pads(name, 0x1234, 0x0001, kind="joystick", naxes=6, nbuttons=13, nhats=1)
        with GamepadDevice(name=name, api="joystick", clock=clock) as device:
            assert "joystick API" in device.status
            pad.button(2, True)
            assert _tick(pg, device).events == {expected}
            pad.axis(2, 32767)  # left trigger axis (rests at -1 on the joystick API)
            assert _tick(pg, device).gripper == -1.0
            pad.axis(5, 32767)
            assert _tick(pg, device).gripper == 1.0
            pad.hat(0, 1)  # d-pad up
            assert _tick(pg, device).translation == pytest.approx((0.0, 0.0, 1.0))
        pad.detach()


def test_unknown_pad_falls_back_to_generic_with_digital_triggers(virtual_pads, pygame_headless, clock):
    pg = pygame_headless
    pad = virtual_pads("ACME Turbo Pad", 0x1234, 0x0002, kind="joystick", naxes=4, nbuttons=12, nhats=1)
    with GamepadDevice(api="joystick", clock=clock) as device:
        assert device.layout.name == "generic" and "unknown gamepad 'ACME Turbo Pad'" in device.notice
        pad.button(7, True)  # R2 is a button on DirectInput pads
        assert _tick(pg, device).gripper == 1.0
        pad.axis(2, -32768)  # right stick left: unbound (MetaWorld has no rotation)
        assert _tick(pg, device).rotation == (0.0, 0.0, 0.0)


def test_unplug_and_replug(virtual_pads, pygame_headless, clock):
    pg = pygame_headless
    pad = virtual_pads("Xbox 360 Controller", 0x045E, 0x028E)
    with GamepadDevice(clock=clock, retry_interval_s=1.0) as device:
        pad.axis(LEFTX, 32767)
        assert _tick(pg, device).translation[0] == pytest.approx(1.0)
        pad.detach()
        lost = _tick(pg, device)
        assert lost.events == {Event.DEVICE_LOST} and lost.translation == (0.0, 0.0, 0.0)
        assert device.status.startswith("unplugged") and not device.connected
        again = virtual_pads("Xbox 360 Controller", 0x045E, 0x028E)
        again.axis(LEFTX, -32768)
        assert _tick(pg, device).translation == (0.0, 0.0, 0.0)  # retry not due yet
        clock.advance(1.5)
        _tick(pg, device)
        assert device.connected
        assert _tick(pg, device).translation[0] == pytest.approx(-1.0)


def test_no_pad_fails_loudly(pygame_headless):
    with pytest.raises(DeviceError, match="no gamepad found"):
        GamepadDevice().connect()


def test_name_selection_and_bad_options(virtual_pads, pygame_headless):
    virtual_pads("Xbox 360 Controller", 0x045E, 0x028E)
    virtual_pads("PS4 Controller", 0x054C, 0x09CC)
    with GamepadDevice(name="ps4") as device:
        assert device.pad_name == "PS4 Controller"
    with pytest.raises(DeviceError, match="no gamepad named like 'switch'.*'Xbox 360 Controller'"):
        GamepadDevice(name="switch").connect()
    with pytest.raises(DeviceError, match="layout='nintendo'"):
        GamepadDevice(layout="nintendo")

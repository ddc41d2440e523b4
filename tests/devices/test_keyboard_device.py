"""Keyboard device driven by KEYDOWN/KEYUP events posted to pygame's real queue (dummy video driver)."""

import pytest

from devices.base import Event, DeviceError
from devices.keyboard import DEFAULT_KEY_BINDINGS, KeyboardDevice, bindings_help, motion_from_keys, ramp


def _post(pygame, kind, key):
    pygame.event.post(pygame.event.Event(kind, key=key, mod=0, unicode="", scancode=0))


def _tick(pygame, device, *posts):
    """Post events, drain the queue as the window loop does, feed and poll."""
    for kind, key in posts:
        _post(pygame, kind, key)
    device.handle_events(pygame.event.get())
    return device.poll()


@pytest.fixture
def keyboard(pygame_headless, clock):
    pygame_headless.event.clear()
    device = KeyboardDevice(clock=clock)
    with device:
        yield device


def test_ramp_accelerates_smoothly_to_full_speed():
    values = [ramp(t, 0.3, 0.25) for t in (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 1.0)]
    assert values[0] == pytest.approx(0.25)
    assert values[-2] == pytest.approx(1.0) and values[-1] == pytest.approx(1.0)
    assert all(b > a for a, b in zip(values[:-2], values[1:-1]))
    assert values[3] == pytest.approx(0.625)  # halfway in time is halfway in speed (smoothstep)


def test_held_w_moves_away_and_ramps_up(pygame_headless, keyboard, clock):
    pg = pygame_headless
    first = _tick(pg, keyboard, (pg.KEYDOWN, pg.K_w))
    assert first.translation == pytest.approx((0.0, 0.25, 0.0))
    clock.advance(0.15)
    mid = _tick(pg, keyboard)
    clock.advance(0.15)
    full = _tick(pg, keyboard)
    assert 0.25 < mid.translation[1] < 1.0
    assert full.translation == pytest.approx((0.0, 1.0, 0.0))
    released = _tick(pg, keyboard, (pg.KEYUP, pg.K_w))
    assert released.translation == (0.0, 0.0, 0.0)


def test_each_default_motion_key_moves_its_axis(pygame_headless, keyboard, clock):
    pg = pygame_headless
    expected = {pg.K_a: (-1, 0, 0), pg.K_d: (1, 0, 0), pg.K_s: (0, -1, 0), pg.K_r: (0, 0, 1), pg.K_f: (0, 0, -1)}
    for key, direction in expected.items():
        _tick(pg, keyboard, (pg.KEYDOWN, key))
        clock.advance(0.5)
        assert _tick(pg, keyboard).translation == pytest.approx(direction)
        _tick(pg, keyboard, (pg.KEYUP, key))


def test_shift_is_precision(pygame_headless, keyboard, clock):
    pg = pygame_headless
    _tick(pg, keyboard, (pg.KEYDOWN, pg.K_d))
    clock.advance(1.0)
    assert _tick(pg, keyboard).translation[0] == pytest.approx(1.0)
    assert _tick(pg, keyboard, (pg.KEYDOWN, pg.K_LSHIFT)).translation[0] == pytest.approx(0.3)
    assert _tick(pg, keyboard, (pg.KEYUP, pg.K_LSHIFT)).translation[0] == pytest.approx(1.0)


def test_opposite_keys_cancel_and_repeats_do_not_restart_the_ramp(pygame_headless, keyboard, clock):
    pg = pygame_headless
    _tick(pg, keyboard, (pg.KEYDOWN, pg.K_a))
    clock.advance(1.0)
    # Key repeat sends KEYDOWN again for a held key: speed must stay full.
    assert _tick(pg, keyboard, (pg.KEYDOWN, pg.K_a)).translation[0] == pytest.approx(-1.0)
    both = _tick(pg, keyboard, (pg.KEYDOWN, pg.K_d))
    assert both.translation[0] == pytest.approx(-1.0 + 0.25)


def test_event_keys_fire_once_per_press(pygame_headless, keyboard):
    pg = pygame_headless
    cmd = _tick(pg, keyboard, (pg.KEYDOWN, pg.K_RETURN), (pg.KEYDOWN, pg.K_p))
    assert cmd.events == {Event.TOGGLE_RECORD, Event.PAUSE}
    assert _tick(pg, keyboard).events == frozenset()  # still held: no second event
    _tick(pg, keyboard, (pg.KEYUP, pg.K_RETURN), (pg.KEYUP, pg.K_p))
    assert _tick(pg, keyboard, (pg.KEYDOWN, pg.K_ESCAPE)).events == {Event.QUIT}
    assert _tick(pg, keyboard, (pg.KEYDOWN, pg.K_BACKSPACE)).events == {Event.DISCARD}


def test_space_toggles_the_latched_gripper(pygame_headless, keyboard):
    pg = pygame_headless
    assert _tick(pg, keyboard).gripper == -1.0
    closed = _tick(pg, keyboard, (pg.KEYDOWN, pg.K_SPACE))
    assert closed.gripper == 1.0 and Event.GRIPPER_TOGGLE in closed.events
    assert _tick(pg, keyboard, (pg.KEYUP, pg.K_SPACE)).gripper == 1.0  # stays closed
    assert _tick(pg, keyboard, (pg.KEYDOWN, pg.K_SPACE)).gripper == -1.0
    _tick(pg, keyboard, (pg.KEYUP, pg.K_SPACE), (pg.KEYDOWN, pg.K_SPACE))
    keyboard.reset()
    assert keyboard.poll().gripper == -1.0


def test_focus_loss_releases_held_keys(pygame_headless, keyboard, clock):
    pg = pygame_headless
    _tick(pg, keyboard, (pg.KEYDOWN, pg.K_w))
    keyboard.handle_events([pg.event.Event(pg.WINDOWFOCUSLOST)])
    assert keyboard.poll().translation == (0.0, 0.0, 0.0)


def test_custom_bindings_replace_the_defaults(pygame_headless, clock):
    pg = pygame_headless
    pg.event.clear()
    with KeyboardDevice({"i": "+y", "k": "-y", "g": "gripper_close"}, clock=clock) as device:
        cmd = _tick(pg, device, (pg.KEYDOWN, pg.K_i), (pg.KEYDOWN, pg.K_w), (pg.KEYDOWN, pg.K_g))
        assert cmd.translation == pytest.approx((0.0, 0.25, 0.0))  # W is no longer bound
        assert cmd.gripper == 1.0


def test_bad_bindings_are_rejected_with_the_key_named(pygame_headless):
    with pytest.raises(DeviceError, match="'w'.*unknown action 'jump'"):
        KeyboardDevice({"w": "jump"})
    with pytest.raises(DeviceError, match="'wasd'.*not a pygame key name"):
        KeyboardDevice({"wasd": "+y"}).connect()


def test_motion_from_keys_is_pure():
    held = {"w": 0.0, "d": 0.3, "left shift": 0.0}
    translation, rotation = motion_from_keys(held, 0.3, DEFAULT_KEY_BINDINGS)
    assert translation == pytest.approx((0.25 * 0.3, 1.0 * 0.3, 0.0))
    assert rotation == (0.0, 0.0, 0.0)


def test_help_lists_every_default_action_and_nothing_unbound():
    text = "\n".join(bindings_help())
    assert "W/S: up/down the screen" in text and "A/D: left/right" in text
    for label in ("Space", "Enter", "Bksp", "Esc", "Shift", "P:", ".: one step", "[/]: speed"):
        assert label in text
    assert "turn" not in text and "Q" not in text  # MetaWorld has no rotation: no key for it by default
    assert bindings_help({"r": "+z", "f": "-z"}) == ["R/F: raise/lower"]
    assert "Q/E: turn left/right" in "\n".join(bindings_help({**DEFAULT_KEY_BINDINGS, "q": "+rz", "e": "-rz"}))

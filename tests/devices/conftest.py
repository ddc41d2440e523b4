"""Shared fixtures: headless pygame, real SDL virtual gamepads, a replaying fake hidapi."""

import os

# Before pygame is imported anywhere: no display, no sound card, and joystick
# input delivered although the dummy window never has focus.
os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ["SDL_AUDIODRIVER"] = "dummy"
os.environ["SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS"] = "1"

import ctypes
import glob

import pytest


@pytest.fixture(scope="session")
def pygame_headless():
    import pygame

    pygame.init()
    pygame.display.set_mode((64, 64))
    yield pygame
    pygame.quit()


# -- SDL virtual joysticks through ctypes on pygame's own SDL2 ------------------


class _VirtualJoystickDesc(ctypes.Structure):
    """SDL_VirtualJoystickDesc, SDL 2.24+ (SDL_VIRTUAL_JOYSTICK_DESC_VERSION 1)."""

    _fields_ = [
        ("version", ctypes.c_uint16), ("type", ctypes.c_uint16), ("naxes", ctypes.c_uint16),
        ("nbuttons", ctypes.c_uint16), ("nhats", ctypes.c_uint16), ("vendor_id", ctypes.c_uint16),
        ("product_id", ctypes.c_uint16), ("padding", ctypes.c_uint16), ("button_mask", ctypes.c_uint32),
        ("axis_mask", ctypes.c_uint32), ("name", ctypes.c_char_p), ("userdata", ctypes.c_void_p),
        ("Update", ctypes.c_void_p), ("SetPlayerIndex", ctypes.c_void_p), ("Rumble", ctypes.c_void_p),
        ("RumbleTriggers", ctypes.c_void_p), ("SetLED", ctypes.c_void_p), ("SendEffect", ctypes.c_void_p),
    ]


def _load_sdl(pygame):
    libs = os.path.join(os.path.dirname(pygame.__file__), os.pardir, "pygame.libs")
    candidates = glob.glob(os.path.join(libs, "libSDL2-2*.so*"))
    if not candidates:
        pytest.skip("pygame's bundled SDL2 library not found")
    sdl = ctypes.CDLL(candidates[0])  # same file pygame loaded, so the same SDL instance
    sdl.SDL_JoystickAttachVirtualEx.argtypes = [ctypes.POINTER(_VirtualJoystickDesc)]
    sdl.SDL_JoystickOpen.restype = ctypes.c_void_p
    sdl.SDL_JoystickOpen.argtypes = [ctypes.c_int]
    sdl.SDL_JoystickClose.argtypes = [ctypes.c_void_p]
    sdl.SDL_JoystickInstanceID.argtypes = [ctypes.c_void_p]
    sdl.SDL_JoystickGetDeviceInstanceID.argtypes = [ctypes.c_int]
    sdl.SDL_JoystickSetVirtualAxis.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int16]
    sdl.SDL_JoystickSetVirtualButton.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint8]
    sdl.SDL_JoystickSetVirtualHat.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint8]
    sdl.SDL_GetError.restype = ctypes.c_char_p
    return sdl


class VirtualPad:
    """A real SDL joystick device driven from the test.

    kind "controller": SDL's virtual game controller (SDL maps it itself:
    axes leftx lefty rightx righty lefttrigger righttrigger, buttons in SDL
    order). kind "joystick": a plain joystick SDL has no mapping for.
    """

    def __init__(self, sdl, pygame, name, vendor_id, product_id, kind="controller", naxes=6, nbuttons=15, nhats=0):
        self.sdl, self.pygame = sdl, pygame
        desc = _VirtualJoystickDesc(
            version=1, type=1 if kind == "controller" else 0, naxes=naxes, nbuttons=nbuttons, nhats=nhats,
            vendor_id=vendor_id, product_id=product_id,
            button_mask=(1 << nbuttons) - 1 if kind == "controller" else 0,
            axis_mask=(1 << naxes) - 1 if kind == "controller" else 0, name=name.encode(),
        )
        index = sdl.SDL_JoystickAttachVirtualEx(ctypes.byref(desc))
        assert index >= 0, sdl.SDL_GetError()
        self.handle = sdl.SDL_JoystickOpen(index)
        assert self.handle, sdl.SDL_GetError()
        self.instance_id = sdl.SDL_JoystickInstanceID(self.handle)
        pygame.event.pump()

    def axis(self, index, value):
        assert self.sdl.SDL_JoystickSetVirtualAxis(self.handle, index, int(value)) == 0
        return self

    def button(self, index, down=True):
        assert self.sdl.SDL_JoystickSetVirtualButton(self.handle, index, 1 if down else 0) == 0
        return self

    def hat(self, index, value):
        assert self.sdl.SDL_JoystickSetVirtualHat(self.handle, index, value) == 0
        return self

    def detach(self):
        if self.handle is None:
            return
        for i in range(self.sdl.SDL_NumJoysticks()):
            if self.sdl.SDL_JoystickGetDeviceInstanceID(i) == self.instance_id:
                assert self.sdl.SDL_JoystickDetachVirtual(i) == 0, self.sdl.SDL_GetError()
                break
        self.sdl.SDL_JoystickClose(self.handle)
        self.handle = None
        self.pygame.event.pump()


@pytest.fixture
def virtual_pads(pygame_headless):
    """Factory: virtual_pads(name, vid, pid, kind=...) -> VirtualPad; all detached afterwards."""
    pygame = pygame_headless
    sdl = _load_sdl(pygame)
    from pygame._sdl2 import controller

    if not controller.get_init():
        controller.init()
    pads = []

    def attach(name, vendor_id=0, product_id=0, **kwargs):
        pad = VirtualPad(sdl, pygame, name, vendor_id, product_id, **kwargs)
        pads.append(pad)
        return pad

    pygame.event.clear()
    yield attach
    for pad in pads:
        pad.detach()
    pygame.event.clear()


class FakeClock:
    def __init__(self, t=100.0):
        self.t = t

    def __call__(self):
        return self.t

    def advance(self, dt):
        self.t += dt


@pytest.fixture
def clock():
    return FakeClock()

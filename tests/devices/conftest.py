"""Shared fixtures: headless pygame, real SDL virtual gamepads, a replaying fake hidapi."""

import os

# Before pygame is imported anywhere: no display, no sound card, and joystick
# input delivered although the dummy window never has focus.
os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ["SDL_AUDIODRIVER"] = "dummy"
os.environ["SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS"] = "1"

import pytest

from devices.stand_ins import VirtualPad, load_sdl


@pytest.fixture(scope="session")
def pygame_headless():
    import pygame

    pygame.init()
    pygame.display.set_mode((64, 64))
    yield pygame
    pygame.quit()


@pytest.fixture
def virtual_pads(pygame_headless):
    """Factory: virtual_pads(name, vid, pid, kind=...) -> VirtualPad; all detached afterwards."""
    pygame = pygame_headless
    try:
        sdl = load_sdl(pygame)
    except RuntimeError as error:
        pytest.skip(str(error))
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

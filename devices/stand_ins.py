"""Stand-ins for input hardware, so the real device classes run without it.

- :class:`FakeHid`: shaped like the ``hid`` module (``enumerate()``, ``device()``); it replays
  report bytes as a SpaceMouse sends them (:func:`report`, :func:`buttons`), can be unplugged and
  plugged again, and refuses to block. ``SpaceMouseDevice(hid_api=FakeHid(...))`` runs unchanged.
- :class:`VirtualPad`: a real SDL virtual joystick or game controller, attached through ctypes to
  pygame's own SDL2, so ``GamepadDevice`` reads it through SDL like any pad. Set
  ``SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS=1`` before pygame starts, or SDL drops its input.

The tests use them, and so does the simulated operator (benchmarks/operator_model.py).
"""

from __future__ import annotations

import ctypes
import glob
import os
import struct

COMPACT = (0x256F, 0xC635)  # split reports, two buttons
WIRELESS = (0x256F, 0xC62E)  # combined report, two buttons
PRO = (0x046D, 0xC62B)  # split reports, numbered keys
ENTERPRISE = (0x256F, 0xC633)  # combined report, numbered keys


def report(report_id, *values):
    """A report as hidapi returns it: id byte, then little-endian int16 values."""
    return [report_id] + list(struct.pack("<%dh" % len(values), *values))


def buttons(*byte_values):
    return [3] + list(byte_values)


READ_ERROR = object()  # the fake raises OSError, as hidapi does when the device is unplugged
END_OF_TICK = object()  # the fake returns [] once: "nothing pending"


class FakeHid:
    """Shaped like the ``hid`` module: enumerate() and device()."""

    def __init__(self, *ids, denied=()):
        self.plugged = {}
        for n, (vid, pid) in enumerate(ids):
            self.plug(vid, pid, path=f"/dev/hidraw{n}".encode())
        self.denied = set(denied)
        self.queues = {}
        self.opened = []

    def plug(self, vid, pid, path, serial="S1"):
        self.plugged[path] = {
            "path": path, "vendor_id": vid, "product_id": pid, "serial_number": serial,
            "usage_page": 1, "usage": 8, "interface_number": 0, "product_string": "fake",
        }

    def unplug(self, path):
        del self.plugged[path]

    def feed(self, path, *items):
        self.queues.setdefault(path, []).extend(items)

    def enumerate(self, vendor_id=0, product_id=0):
        return list(self.plugged.values())

    def device(self):
        return FakeHandle(self)


class FakeHandle:
    def __init__(self, hid):
        self.hid, self.path, self.nonblocking = hid, None, False

    def open_path(self, path):
        if path not in self.hid.plugged:
            raise OSError("open failed")
        if path in self.hid.denied:
            raise OSError("open failed")
        self.path = path
        self.hid.opened.append(path)

    def set_nonblocking(self, flag):
        self.nonblocking = bool(flag)

    def read(self, size):
        assert self.nonblocking, "the device must never block the control loop"
        if self.path not in self.hid.plugged:
            raise OSError("read error")
        queue = self.hid.queues.setdefault(self.path, [])
        if not queue:
            return []
        item = queue.pop(0)
        if item is READ_ERROR:
            raise OSError("read error")
        if item is END_OF_TICK:
            return []
        return list(item)

    def close(self):
        self.path = None




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


def load_sdl(pygame):
    """pygame's own SDL2 library through ctypes (the same instance pygame uses)."""
    libs = os.path.join(os.path.dirname(pygame.__file__), os.pardir, "pygame.libs")
    candidates = glob.glob(os.path.join(libs, "libSDL2-2*.so*"))
    if not candidates:
        raise RuntimeError("pygame's bundled SDL2 library not found (SDL virtual gamepads need it)")
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
        if index < 0:
            raise RuntimeError(f"SDL could not attach a virtual joystick: {sdl.SDL_GetError().decode()}")
        self.handle = sdl.SDL_JoystickOpen(index)
        if not self.handle:
            raise RuntimeError(f"SDL could not open the virtual joystick: {sdl.SDL_GetError().decode()}")
        self.instance_id = sdl.SDL_JoystickInstanceID(self.handle)
        pygame.event.pump()

    def axis(self, index, value):
        self._check(self.sdl.SDL_JoystickSetVirtualAxis(self.handle, index, int(value)))
        return self

    def button(self, index, down=True):
        self._check(self.sdl.SDL_JoystickSetVirtualButton(self.handle, index, 1 if down else 0))
        return self

    def hat(self, index, value):
        self._check(self.sdl.SDL_JoystickSetVirtualHat(self.handle, index, value))
        return self

    def _check(self, result: int) -> None:
        if result != 0:
            raise RuntimeError(f"SDL refused a virtual joystick input: {self.sdl.SDL_GetError().decode()}")

    def detach(self):
        if self.handle is None:
            return
        for i in range(self.sdl.SDL_NumJoysticks()):
            if self.sdl.SDL_JoystickGetDeviceInstanceID(i) == self.instance_id:
                self._check(self.sdl.SDL_JoystickDetachVirtual(i))
                break
        self.sdl.SDL_JoystickClose(self.handle)
        self.handle = None
        if self.pygame.display.get_init():  # after the window closed there is no event queue to pump
            self.pygame.event.pump()

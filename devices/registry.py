"""Device names -> factories: the one place `--device NAME` is resolved.

Factories import their module only when called, so choosing the keyboard does
not import hidapi and listing names imports nothing.
"""

from __future__ import annotations

from typing import Callable

from devices.base import Device, DeviceError


def _keyboard(**options) -> Device:
    from devices.keyboard import KeyboardDevice

    return KeyboardDevice(**options)


def _gamepad(**options) -> Device:
    from devices.gamepad import GamepadDevice

    return GamepadDevice(**options)


def _spacemouse(**options) -> Device:
    from devices.spacemouse import SpaceMouseDevice

    return SpaceMouseDevice(**options)


def _scripted(**options) -> Device:
    from devices.scripted import ScriptedExpert

    return ScriptedExpert(**options)  # needs task="pick-place-v3" etc.


def _humanlike(**options) -> Device:
    from devices.humanlike import HumanlikeExpert

    return HumanlikeExpert(**options)  # the scripted expert with human-like perturbations; task=, seed=


def _corrector(**options) -> Device:
    from devices.corrector import SimulatedCorrector

    return SimulatedCorrector(**options)  # the scripted expert gated by a person's rule; task=


DEVICE_FACTORIES: dict[str, Callable[..., Device]] = {
    "keyboard": _keyboard,
    "gamepad": _gamepad,
    "spacemouse": _spacemouse,
    "scripted": _scripted,
    "humanlike": _humanlike,
    "corrector": _corrector,
}


def register_device(name: str, factory: Callable[..., Device]) -> None:
    """Add a device kind, e.g. ``register_device("scripted", ScriptedDevice)``."""
    DEVICE_FACTORIES[name] = factory


def make_device(name: str, **options) -> Device:
    """Build (not connect) the device called ``name``; options go to its constructor."""
    try:
        factory = DEVICE_FACTORIES[name]
    except KeyError:
        raise DeviceError(f"unknown device {name!r}; use one of: {', '.join(sorted(DEVICE_FACTORIES))}") from None
    try:
        return factory(**options)
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):
            raise
        raise DeviceError(f"device {name!r}: {exc}; check the option name") from None

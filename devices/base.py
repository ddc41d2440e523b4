"""The one interface every input device implements.

A device reports, once per control tick, a :class:`Command` in its own
normalized units: translation and rotation in [-1, 1] along the device's own
axes, a gripper command, and the discrete events the operator triggered since
the last tick. Mapping a command to the simulator's action (frames,
sensitivity, inversion) is done by ``teleop/``, never here, so drivers do not
import the simulator.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Optional


class DeviceError(RuntimeError):
    """A device could not be found, opened or read. The message says what to do."""


class Event(str, enum.Enum):
    """Discrete operator requests, independent of which button produced them."""

    TOGGLE_RECORD = "toggle_record"  # start recording, or end the episode being recorded
    DISCARD = "discard"  # throw the current episode away and re-record the same spawn
    RESET = "reset"  # reset the episode to a fresh spawn
    PAUSE = "pause"  # freeze the simulation; again to resume
    QUIT = "quit"  # leave; every kept episode stays on disk
    MARK_SUCCESS = "mark_success"  # the operator says the task is done
    KEEP = "keep"  # keep the episode that just ended
    STEP = "step"  # while paused: advance the simulation by one control step
    SLOWER = "slower"  # run the simulation slower (a smaller fraction of real time)
    FASTER = "faster"  # run the simulation faster (up to real time)
    GRIPPER_TOGGLE = "gripper_toggle"  # open/close the gripper
    # Sent once, on the tick a device goes away (unplugged). Not PAUSE: PAUSE
    # toggles, so it would un-pause a session the operator had already paused.
    DEVICE_LOST = "device_lost"


@dataclass(frozen=True)
class Command:
    """One tick of operator input, in the device's own frame and units.

    translation: (x, y, z) in [-1, 1]; for view-frame devices +x is right on
        screen, +y is away from the operator (into the screen), +z is up.
    rotation: (rx, ry, rz) in [-1, 1], right-handed about the same axes.
    gripper: target in [-1, 1]; -1 open, +1 closed. None leaves it unchanged.
    events: what the operator asked for since the previous tick.
    """

    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rotation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    gripper: Optional[float] = None
    events: frozenset[Event] = field(default_factory=frozenset)

    def is_finite(self) -> bool:
        values = list(self.translation) + list(self.rotation)
        if self.gripper is not None:
            values.append(self.gripper)
        return all(math.isfinite(v) for v in values)


IDLE = Command()


class Device:
    """Base class: constructing touches no hardware; ``connect()`` does.

    Subclasses set ``name`` and ``frame`` and implement ``poll``. ``frame`` is
    ``"view"`` for human devices (axes relative to the camera the operator
    watches) or ``"world"`` for devices that already speak the simulator's
    frame (the scripted expert).
    """

    name: str = "device"
    frame: str = "view"

    def connect(self) -> None:
        """Open the hardware. Raises DeviceError with a way forward when it cannot."""

    def poll(self) -> Command:
        """The command for this control tick. Never blocks for long."""
        raise NotImplementedError

    def observe(self, observation) -> None:
        """Hand the device the latest environment observation (used by scripted devices)."""

    def reset(self) -> None:
        """Called at the start of each episode."""

    @property
    def episode_attrs(self) -> dict:
        """Settings of this device that every episode it records stores beside its name (e.g. the scripted
        expert's noise); plain numbers and strings."""
        return {}

    def close(self) -> None:
        """Release the hardware and stop any reader thread."""

    @property
    def status(self) -> str:
        """A short human-readable state for the HUD ("connected", "unplugged", ...)."""
        return "ok"

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False

"""3Dconnexion SpaceMouse over raw HID (hidapi).

Bytes are decoded by pure functions driven by ``LAYOUTS``, a table keyed by
(vendor_id, product_id); tests feed recorded reports to them without hardware.

Reports, as hidapi returns them (first byte = report id):
- split models: report 1 = Tx Ty Tz, report 2 = Rx Ry Rz (7 bytes each);
- combined models: report 1 = Tx Ty Tz Rx Ry Rz (13 bytes);
- report 3 = buttons, a little-endian bitfield from byte 1 on.
Axes are little-endian int16, nominally +-350 (some units exceed it: clipped).
The layout, not the report length, decides how report 1 is read: on Windows
hidapi pads every report to the longest one, so lengths are not reliable.

Buttons: on two-button models (SpaceNavigator, Compact, Wireless) LEFT toggles
the gripper and RIGHT starts/stops recording. Pro/Enterprise/SpacePilot models
use their numbered keys: 1 = gripper, 2 = record, 3 = discard, 4 = mark success.

HID frame: +X right, +Y toward the user, +Z down, rotations right-handed about
those. The view frame (devices.base.Command) has +y away and +z up: that is a
180-degree turn about X, so Y and Z flip for translations and rotations alike.
The signs live per model so a unit that disagrees is fixed in one row.

Every poll drains all pending reports (non-blocking) so the command is never
built from stale, buffered motion. An unplug shows up as a read error: the
device reports "unplugged", emits Event.DEVICE_LOST once, returns idle motion,
and re-opens the same model on later polls when it comes back.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, replace
from typing import Callable, Mapping, Optional, Sequence

from devices.actions import GripperLatch, events_for
from devices.base import Command, Device, DeviceError, Event

THREEDCONNEXION_VID = 0x256F  # 3Dconnexion's own vendor id; older models use Logitech's 046d
AXIS_FULL_SCALE = 350
HID_TO_VIEW = (1.0, -1.0, -1.0, 1.0, -1.0, -1.0)  # (Tx, Ty, Tz, Rx, Ry, Rz)
UDEV_RULES = os.path.join(os.path.dirname(__file__), "data", "99-3dconnexion.rules")
MAX_REPORTS_PER_POLL = 512  # a bound, so a device that never runs dry cannot hang a tick

TWO_BUTTONS = {"left": 0, "right": 1}
TWO_BUTTON_ACTIONS = {"left": "gripper_toggle", "right": "toggle_record"}
NUMBERED_ACTIONS = {"1": "gripper_toggle", "2": "toggle_record", "3": "discard", "4": "mark_success"}
# Bit positions (byte 1 bit 0 = 0) of the numbered keys, from pyspacemouse's
# device table; not verified on hardware here.
PRO_BUTTONS = {"1": 12, "2": 13, "3": 14, "4": 15}
SPACEPILOT_PRO_BUTTONS = {"1": 17, "2": 18, "3": 14, "4": 15}
SPACEPILOT_BUTTONS = {"1": 0, "2": 1, "3": 2, "4": 3}


@dataclass(frozen=True)
class SpaceMouseLayout:
    """How one model's reports are laid out and what its buttons do."""

    name: str
    report_format: str  # "split" (reports 1 and 2) or "combined" (report 1 carries all six)
    buttons: Mapping[str, int]  # button name -> bit in report 3's bitfield
    button_actions: Mapping[str, str]  # button name -> action (devices.actions)
    signs: tuple[float, ...] = HID_TO_VIEW  # HID axes -> view axes, per model


def _split(name, buttons=TWO_BUTTONS, actions=TWO_BUTTON_ACTIONS):
    return SpaceMouseLayout(name, "split", buttons, actions)


def _combined(name, buttons=TWO_BUTTONS, actions=TWO_BUTTON_ACTIONS):
    return SpaceMouseLayout(name, "combined", buttons, actions)


LAYOUTS: dict[tuple[int, int], SpaceMouseLayout] = {
    (0x046D, 0xC626): _split("SpaceNavigator"),
    (0x046D, 0xC627): _split("SpaceExplorer"),
    (0x046D, 0xC625): _split("SpacePilot", SPACEPILOT_BUTTONS, NUMBERED_ACTIONS),
    (0x046D, 0xC629): _split("SpacePilot Pro", SPACEPILOT_PRO_BUTTONS, NUMBERED_ACTIONS),
    (0x046D, 0xC62B): _split("SpaceMouse Pro", PRO_BUTTONS, NUMBERED_ACTIONS),
    (0x256F, 0xC635): _split("SpaceMouse Compact"),
    (0x256F, 0xC62E): _combined("SpaceMouse Wireless (cabled)"),
    (0x256F, 0xC62F): _combined("SpaceMouse Wireless (receiver)"),
    (0x256F, 0xC63A): _combined("SpaceMouse Wireless (Bluetooth)"),
    (0x256F, 0xC632): _combined("SpaceMouse Pro Wireless (receiver)", PRO_BUTTONS, NUMBERED_ACTIONS),
    (0x256F, 0xC638): _combined("SpaceMouse Pro Wireless (Bluetooth)", PRO_BUTTONS, NUMBERED_ACTIONS),
    (0x256F, 0xC633): _combined("SpaceMouse Enterprise", PRO_BUTTONS, NUMBERED_ACTIONS),
    (0x256F, 0xC652): _combined("3Dconnexion Universal Receiver", PRO_BUTTONS, NUMBERED_ACTIONS),
}
# SpaceExplorer keys 1 and 2 sit on bits 0 and 1, like the two-button models.


@dataclass(frozen=True)
class SpaceMouseState:
    """Latest decoded values: axes in the HID frame scaled to [-1, 1], button bits."""

    axes: tuple[float, ...] = (0.0,) * 6  # Tx, Ty, Tz, Rx, Ry, Rz
    buttons: int = 0


def _int16(data: Sequence[int], offset: int) -> int:
    return int.from_bytes(bytes(data[offset : offset + 2]), "little", signed=True)


def _scaled(raw: int) -> float:
    return max(-AXIS_FULL_SCALE, min(AXIS_FULL_SCALE, raw)) / AXIS_FULL_SCALE


def decode_report(layout: SpaceMouseLayout, data: Sequence[int], state: SpaceMouseState) -> SpaceMouseState:
    """Fold one HID report (report id first) into ``state``; unknown or short reports change nothing."""
    if not data:
        return state
    report_id = data[0]
    axes = list(state.axes)
    if report_id == 1 and layout.report_format == "combined" and len(data) >= 13:
        axes = [_scaled(_int16(data, 1 + 2 * i)) for i in range(6)]
    elif report_id == 1 and layout.report_format == "split" and len(data) >= 7:
        axes[0:3] = [_scaled(_int16(data, 1 + 2 * i)) for i in range(3)]
    elif report_id == 2 and layout.report_format == "split" and len(data) >= 7:
        axes[3:6] = [_scaled(_int16(data, 1 + 2 * i)) for i in range(3)]
    elif report_id == 3 and len(data) >= 2:
        return replace(state, buttons=int.from_bytes(bytes(data[1:]), "little"))
    else:
        return state  # e.g. battery or LED reports from wireless units
    return replace(state, axes=tuple(axes))


def apply_deadzone(value: float, deadzone: float) -> float:
    """Zero inside the deadzone, rescaled outside so full deflection still reaches 1."""
    magnitude = abs(value)
    if magnitude <= deadzone:
        return 0.0
    return (magnitude - deadzone) / (1.0 - deadzone) * (1.0 if value > 0 else -1.0)


def to_view(state: SpaceMouseState, layout: SpaceMouseLayout, deadzone: float):
    """(translation, rotation) in the view frame, deadzone applied per axis against drift."""
    v = [apply_deadzone(a * s, deadzone) for a, s in zip(state.axes, layout.signs)]
    return (v[0], v[1], v[2]), (v[3], v[4], v[5])


def pressed_buttons(layout: SpaceMouseLayout, before: int, after: int) -> list[str]:
    """Names of the buttons that went down between two button bitfields."""
    went_down = after & ~before
    return [name for name, bit in layout.buttons.items() if went_down >> bit & 1]


def find_spacemice(entries: Sequence[Mapping]) -> list[Mapping]:
    """hid.enumerate() entries that are SpaceMice, one interface per physical device.

    A unit can expose several HID interfaces (the Universal Receiver does);
    the motion reports come on the multi-axis-controller one (usage page 1,
    usage 8), so where the backend reports usages only that one is kept.
    """
    found = [e for e in entries if (e.get("vendor_id"), e.get("product_id")) in LAYOUTS]
    groups: dict[tuple, list[Mapping]] = {}
    for e in found:
        groups.setdefault((e["vendor_id"], e["product_id"], e.get("serial_number")), []).append(e)
    result = []
    for members in groups.values():
        multi_axis = [e for e in members if e.get("usage_page") == 1 and e.get("usage") == 8]
        # Backends that report no usages: keep every interface, lowest first.
        result.extend(multi_axis or sorted(members, key=lambda e: e.get("interface_number", 0)))
    return result


def open_failure_message(entry: Mapping, error: BaseException) -> str:
    """Why opening failed and what to do, for connect() and discovery."""
    path = _path_text(entry.get("path", b""))
    name = LAYOUTS.get((entry.get("vendor_id"), entry.get("product_id")))
    what = f"{name.name if name else 'SpaceMouse'} at {path}"
    if sys.platform.startswith("linux"):
        fix = (
            f"install the udev rule: sudo cp {UDEV_RULES} /etc/udev/rules.d/ && "
            "sudo udevadm control --reload-rules && sudo udevadm trigger, then unplug and replug"
        )
        if path.startswith("/dev/") and os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
            return f"permission denied on {what}: {fix}"
        return f"could not open {what} ({error}): usually permission denied, so {fix}; also stop spacenavd if it holds the device"
    if sys.platform == "darwin":
        return f"could not open {what} ({error}): quit 3DconnexionHelper (3Dconnexion's driver holds the device) and retry"
    return f"could not open {what} ({error}): close 3Dconnexion's driver software and retry"


def _path_text(path) -> str:
    return path.decode(errors="replace") if isinstance(path, (bytes, bytearray)) else str(path)


def default_hid_api():
    """The hidapi binding. On Linux its ``hidraw`` backend, which leaves the
    kernel driver attached and works with the hidraw udev rule; the ``hid``
    module there is the libusb backend, which detaches the kernel driver."""
    if sys.platform.startswith("linux"):
        try:
            import hidraw

            return hidraw
        except ImportError:
            pass
    try:
        import hid
    except ImportError:
        raise DeviceError("the SpaceMouse needs hidapi: pip install hidapi") from None
    return hid


class SpaceMouseDevice(Device):
    """A 6-DoF SpaceMouse read through hidapi, with unplug/replug recovery.

    path: open this HID path (see `teleop devices`); default: the first SpaceMouse.
    deadzone: per-axis fraction of full scale ignored around zero (drift).
    hid_api: anything shaped like the ``hid`` module (``enumerate()`` and
        ``device()``); tests pass a fake that replays recorded reports.
    retry_interval_s: how often to look for the device again after an unplug.
    clock: monotonic seconds.
    """

    name = "spacemouse"
    frame = "view"

    def __init__(
        self,
        path: Optional[bytes | str] = None,
        *,
        deadzone: float = 0.08,
        hid_api=None,
        retry_interval_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0.0 <= deadzone < 1.0:
            raise DeviceError(f"deadzone={deadzone}: use a value in [0, 1)")
        self.path = path.encode() if isinstance(path, str) else path
        self.deadzone = deadzone
        self.retry_interval_s = retry_interval_s
        self._hid_api = hid_api
        self._clock = clock
        self._handle = None
        self._entry: Optional[Mapping] = None
        self.layout: Optional[SpaceMouseLayout] = None
        self._state = SpaceMouseState()
        self._gripper = GripperLatch()
        self._lost_pending = False
        self._last_try = 0.0
        self._status = "not connected"

    # -- opening ---------------------------------------------------------
    def connect(self) -> None:
        if self._hid_api is None:
            self._hid_api = default_hid_api()
        entries = list(self._hid_api.enumerate())
        mice = find_spacemice(entries)
        if self.path is not None:
            mice = [e for e in mice if e.get("path") == self.path]
            if not mice:
                raise DeviceError(
                    f"no SpaceMouse at path {_path_text(self.path)}: check the path with `teleop devices`"
                )
        if not mice:
            unknown = sorted(
                {f"{e['vendor_id']:04x}:{e['product_id']:04x}" for e in entries if e.get("vendor_id") == THREEDCONNEXION_VID}
            )
            hint = f" (unknown 3Dconnexion ids {', '.join(unknown)}: add them to LAYOUTS in devices/spacemouse.py)" if unknown else ""
            raise DeviceError(f"no SpaceMouse found: plug it in, or run `teleop devices`{hint}")
        entry = mice[0]
        try:
            self._open(entry)
        except (OSError, ValueError) as exc:
            raise DeviceError(open_failure_message(entry, exc)) from exc

    def _open(self, entry: Mapping) -> None:
        handle = self._hid_api.device()
        handle.open_path(entry["path"])
        handle.set_nonblocking(1)
        self._handle = handle
        self._entry = entry
        self.layout = LAYOUTS[(entry["vendor_id"], entry["product_id"])]
        self._state = SpaceMouseState()
        self._status = "connected"

    def _try_reopen(self) -> None:
        """Look for the same model (and serial) again; hidraw paths change on replug."""
        self._last_try = self._clock()
        old = self._entry
        try:
            mice = find_spacemice(list(self._hid_api.enumerate()))
        except OSError:
            return
        same_path = [e for e in mice if e.get("path") == old["path"]]
        same_model = [
            e for e in mice
            if (e["vendor_id"], e["product_id"], e.get("serial_number"))
            == (old["vendor_id"], old["product_id"], old.get("serial_number"))
        ]
        for entry in same_path + same_model:
            try:
                self._open(entry)
                return
            except (OSError, ValueError):
                continue

    def _lose(self) -> None:
        try:
            self._handle.close()
        except Exception:  # the handle is already dead; closing is best effort
            pass
        self._handle = None
        self._state = SpaceMouseState()  # never keep moving on the last reading
        self._lost_pending = True
        self._last_try = self._clock()
        self._status = "unplugged"

    # -- reading ---------------------------------------------------------
    def _drain(self) -> list[str]:
        """Read every pending report; return the names of buttons pressed meanwhile."""
        pressed: list[str] = []
        for _ in range(MAX_REPORTS_PER_POLL):
            data = self._handle.read(64)
            if not data:
                break
            new = decode_report(self.layout, data, self._state)
            pressed += pressed_buttons(self.layout, self._state.buttons, new.buttons)
            self._state = new
        return pressed

    def poll(self) -> Command:
        if self._entry is None:
            raise DeviceError("SpaceMouseDevice.poll() before connect()")
        if self._handle is None and self._clock() - self._last_try >= self.retry_interval_s:
            self._try_reopen()
        pressed: list[str] = []
        if self._handle is not None:
            try:
                pressed = self._drain()
            except (OSError, ValueError):  # hidapi raises IOError('read error') on unplug
                self._lose()
        actions = [self.layout.button_actions[b] for b in pressed if b in self.layout.button_actions]
        changed = self._gripper.apply(actions)
        events = set(events_for(actions, changed))
        if self._lost_pending:
            events.add(Event.DEVICE_LOST)
            self._lost_pending = False
        translation, rotation = to_view(self._state, self.layout, self.deadzone)
        return Command(translation, rotation, self._gripper.target, frozenset(events))

    def reset(self) -> None:
        self._gripper.reset()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self._handle = None
        self._status = "closed"

    @property
    def connected(self) -> bool:
        return self._handle is not None

    @property
    def status(self) -> str:
        if self._status == "connected" and self.layout is not None:
            return f"connected: {self.layout.name}"
        if self._status == "unplugged":
            return "unplugged (plug it back in to resume)"
        return self._status

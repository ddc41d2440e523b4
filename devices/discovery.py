"""What input devices are plugged in, and whether this user can open them.

``list_devices()`` backs `teleop devices`: SpaceMice from hid.enumerate()
filtered by 3Dconnexion's vendor ids, gamepads from pygame's joystick list.
It works with nothing connected (an empty list) and never raises for a device
it cannot open: that device's record says why and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from devices.base import DeviceError
from devices.spacemouse import LAYOUTS, THREEDCONNEXION_VID, default_hid_api, find_spacemice, open_failure_message


@dataclass(frozen=True)
class DeviceRecord:
    kind: str  # "spacemouse" or "gamepad"
    name: str
    vid_pid: str  # "256f:c635"; "" when the backend does not say
    path: str  # what to pass as path= (spacemouse) or index= (gamepad)
    can_open: bool
    problem: Optional[str] = None  # why it cannot be used, and the fix


def _path_text(path) -> str:
    return path.decode(errors="replace") if isinstance(path, (bytes, bytearray)) else str(path)


def list_spacemice(hid_api=None, *, try_open: bool = True) -> list[DeviceRecord]:
    """One record per SpaceMouse; opening each briefly tells whether permissions allow it."""
    try:
        hid_api = hid_api or default_hid_api()
    except DeviceError as exc:
        return [DeviceRecord("spacemouse", "(hidapi not installed)", "", "", False, str(exc))]
    entries = list(hid_api.enumerate())
    records = []
    for entry in find_spacemice(entries):
        problem = None
        if try_open:
            handle = hid_api.device()
            try:
                handle.open_path(entry["path"])
            except (OSError, ValueError) as exc:
                problem = open_failure_message(entry, exc)
            else:
                handle.close()
        vid, pid = entry["vendor_id"], entry["product_id"]
        records.append(DeviceRecord(
            "spacemouse", LAYOUTS[(vid, pid)].name, f"{vid:04x}:{pid:04x}",
            _path_text(entry["path"]), problem is None, problem,
        ))
    # 3Dconnexion multi-axis devices missing from the layout table: show them, so
    # a new model is reported instead of silently ignored. Only vendor 256f:
    # 046d is Logitech, whose other products are not SpaceMice.
    unknown = {
        (e["vendor_id"], e["product_id"]): e for e in entries
        if e.get("vendor_id") == THREEDCONNEXION_VID and (e["vendor_id"], e["product_id"]) not in LAYOUTS
        and e.get("usage_page") == 1 and e.get("usage") == 8
    }
    for (vid, pid), entry in sorted(unknown.items()):
        records.append(DeviceRecord(
            "spacemouse", entry.get("product_string") or "unknown 3Dconnexion device", f"{vid:04x}:{pid:04x}",
            _path_text(entry["path"]), False,
            "model not in the layout table: add it to LAYOUTS in devices/spacemouse.py (split or combined reports)",
        ))
    return records


def guid_vid_pid(guid: str) -> str:
    """Vendor and product ids from an SDL joystick GUID, "" when it holds none.

    SDL packs them little-endian at bytes 4-5 and 8-9, with zeros at 6-7 and
    10-11; GUIDs built from a name instead do not have those zeros.
    """
    try:
        raw = bytes.fromhex(guid)
    except ValueError:
        return ""
    if len(raw) != 16 or raw[6:8] != b"\0\0" or raw[10:12] != b"\0\0":
        return ""
    vid = int.from_bytes(raw[4:6], "little")
    pid = int.from_bytes(raw[8:10], "little")
    return f"{vid:04x}:{pid:04x}" if vid else ""


def list_gamepads() -> list[DeviceRecord]:
    """One record per joystick pygame sees; SDL opens them without special permissions."""
    try:
        import pygame
    except ImportError:
        return [DeviceRecord("gamepad", "(pygame not installed)", "", "", False, "pip install pygame")]
    started_here = not pygame.joystick.get_init()
    if started_here:
        pygame.joystick.init()
    try:
        try:
            from pygame._sdl2 import controller

            if not controller.get_init():
                controller.init()
            is_controller = controller.is_controller
        except (ImportError, AttributeError, pygame.error):
            is_controller = lambda index: False  # noqa: E731 - joystick API only
        records = []
        for index in range(pygame.joystick.get_count()):
            try:
                joystick = pygame.joystick.Joystick(index)
                joystick.init()
                name, guid = joystick.get_name(), joystick.get_guid()
            except pygame.error as exc:
                records.append(DeviceRecord("gamepad", "?", "", str(index), False, f"SDL could not open it: {exc}"))
                continue
            problem = None
            if not is_controller(index):
                problem = "no SDL game-controller mapping: buttons follow the layout's raw table; check them, or give a mapping file"
            records.append(DeviceRecord("gamepad", name, guid_vid_pid(guid), str(index), True, problem))
        return records
    finally:
        if started_here:
            pygame.joystick.quit()


def list_devices(hid_api=None, *, include_gamepads: bool = True) -> list[DeviceRecord]:
    """Every SpaceMouse and gamepad connected; [] when there is none."""
    records = list_spacemice(hid_api)
    if include_gamepads:
        records += list_gamepads()
    return records


def format_devices(records: list[DeviceRecord]) -> list[str]:
    """Lines for `teleop devices`."""
    if not records:
        return ["no SpaceMouse or gamepad found (the keyboard always works)"]
    lines = []
    for r in records:
        state = "ok" if r.can_open else "cannot open"
        lines.append(f"{r.kind:10s} {r.name:40s} {r.vid_pid:9s} {r.path:20s} {state}")
        if r.problem:
            lines.append(f"           -> {r.problem}")
    return lines

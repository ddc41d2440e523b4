"""Per-device feel (sensitivity, axis inversion), saved between sessions.

One TOML file, ``devices.toml`` in ``$TELEOP_CONFIG_DIR`` (tests point it at
a temporary folder), else ``$XDG_CONFIG_HOME/teleop`` or ``~/.config/teleop``::

    [spacemouse]
    sensitivity = 0.6
    invert = ["y"]

`teleop record --sensitivity S --invert x,y` uses the values and saves them for
that device, so the next session feels the same. The values feed
:class:`teleop.mapping.ControlSettings`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from teleop.atomic import write_text
from teleop.errors import ToolkitError
from teleop.mapping import ControlSettings

CONFIG_DIR_ENV = "TELEOP_CONFIG_DIR"
AXES = ("x", "y", "z")
SENSITIVITY_RANGE = (0.05, 5.0)


class SettingsError(ToolkitError):
    """The settings file or a settings flag is wrong; the message says how to fix it."""


def config_dir() -> Path:
    if os.environ.get(CONFIG_DIR_ENV):
        return Path(os.environ[CONFIG_DIR_ENV])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "teleop"


def settings_path() -> Path:
    return config_dir() / "devices.toml"


def parse_invert(text: str) -> tuple[str, ...]:
    """``"x,y"`` -> ("x", "y"); ``"none"`` or ``""`` -> (). Raises SettingsError naming the bad axis."""
    if text.strip().lower() in ("", "none"):
        return ()
    axes = tuple(a.strip().lower() for a in text.split(",") if a.strip())
    bad = [a for a in axes if a not in AXES]
    if bad:
        raise SettingsError(f"--invert {text!r}: unknown axis {bad[0]!r}; use a comma list of x, y, z (or 'none')")
    return tuple(sorted(set(axes), key=AXES.index))


def check_sensitivity(value: float, where: str) -> float:
    low, high = SENSITIVITY_RANGE
    if not low <= value <= high:
        raise SettingsError(f"{where}: sensitivity {value} is outside [{low}, {high}]")
    return float(value)


def _to_settings(sensitivity: float, invert: tuple[str, ...]) -> ControlSettings:
    return ControlSettings(sensitivity=sensitivity, invert_x="x" in invert, invert_y="y" in invert,
                           invert_z="z" in invert)


def _inverted(settings: ControlSettings) -> list[str]:
    return [a for a in AXES if getattr(settings, f"invert_{a}")]


def read_all(path: Optional[Path] = None) -> dict[str, ControlSettings]:
    """Every device's saved settings; {} when the file does not exist."""
    path = Path(path) if path else settings_path()
    if not path.exists():
        return {}
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise SettingsError(f"reading {path} needs Python 3.11+ or `pip install tomli`") from None
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise SettingsError(f"cannot read device settings {path}: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"device settings {path} is not valid TOML ({error}): fix it or delete the file") from None
    result = {}
    for device, table in raw.items():
        where = f"{path} [{device}]"
        if not isinstance(table, dict):
            raise SettingsError(f"{where}: expected a table of settings like `sensitivity = 1.0`")
        unknown = set(table) - {"sensitivity", "invert"}
        if unknown:
            raise SettingsError(f"{where}: unknown setting {sorted(unknown)[0]!r}; use sensitivity and invert")
        sensitivity = table.get("sensitivity", 1.0)
        if not isinstance(sensitivity, (int, float)) or isinstance(sensitivity, bool):
            raise SettingsError(f"{where}: sensitivity must be a number, got {sensitivity!r}")
        invert = table.get("invert", [])
        if not isinstance(invert, list) or not all(isinstance(a, str) for a in invert):
            raise SettingsError(f"{where}: invert must be a list like [\"x\", \"y\"], got {invert!r}")
        result[device] = _to_settings(check_sensitivity(sensitivity, where), parse_invert(",".join(invert)))
    return result


def write_all(settings: dict[str, ControlSettings], path: Optional[Path] = None) -> Path:
    """Write every device's settings (temporary name, then rename: never a half-written file)."""
    path = Path(path) if path else settings_path()
    lines = ["# teleop device settings: written by `teleop record --sensitivity/--invert`", ""]
    for device in sorted(settings):
        s = settings[device]
        invert = ", ".join(f'"{a}"' for a in _inverted(s))
        lines += [f"[{device}]", f"sensitivity = {s.sensitivity!r}", f"invert = [{invert}]", ""]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, "\n".join(lines))
    except OSError as error:
        raise SettingsError(f"cannot save device settings to {path}: {error.strerror or error}; "
                            f"set {CONFIG_DIR_ENV} to a writable folder") from None
    return path


def resolve(device: str, *, sensitivity: Optional[float] = None, invert: Optional[str] = None,
            save: bool = True, path: Optional[Path] = None) -> tuple[ControlSettings, Optional[Path]]:
    """The settings to use for ``device``: saved ones, overridden by flags.

    Returns (settings, path written or None). Flags are saved for next time when ``save``.
    """
    saved = read_all(path)
    current = saved.get(device, ControlSettings())
    if sensitivity is None and invert is None:
        return current, None
    new_sensitivity = current.sensitivity if sensitivity is None else check_sensitivity(sensitivity, "--sensitivity")
    new_invert = tuple(_inverted(current)) if invert is None else parse_invert(invert)
    settings = _to_settings(new_sensitivity, new_invert)
    if not save:
        return settings, None
    saved[device] = settings
    return settings, write_all(saved, path)


def describe(settings: ControlSettings) -> str:
    inverted = ",".join(_inverted(settings)) or "none"
    return f"sensitivity {settings.sensitivity:g}, inverted {inverted}"

"""Device command -> environment action, in the frame of the view the operator watches.

A human pushes "forward" meaning "away from me on the screen". The camera the
operator watches decides which world direction that is: screen-right and
screen-up, projected on the table plane, become the command's x and y axes.
Devices that already speak the simulator's frame (``frame == "world"``, the
scripted expert) pass through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from devices.base import Command
from teleop.env import UPSIDE_DOWN_CAMERAS, ActionError


@dataclass
class ControlSettings:
    """Per-device feel, saved with the device's settings."""

    sensitivity: float = 1.0  # scales translation before clipping to [-1, 1]
    invert_x: bool = False
    invert_y: bool = False
    invert_z: bool = False


def view_basis(env, camera: str | None) -> np.ndarray:
    """3x3 matrix whose columns are the world directions of the command's x (screen right),
    y (away from the operator) and z (up) axes, for the named camera.

    With no camera the identity (world frame) is returned.
    """
    if camera is None:
        return np.eye(3)
    xmat = env.data.cam(camera).xmat.reshape(3, 3)  # columns: camera x (right), y (up), z (back)
    right, up = xmat[:, 0].copy(), xmat[:, 1].copy()
    if camera in UPSIDE_DOWN_CAMERAS:
        right, up = -right, -up
    right[2] = 0.0
    up[2] = 0.0
    if np.linalg.norm(up) < 1e-6:  # camera looks along the horizon's normal: use its backward axis
        up = -xmat[:, 2].copy()
        up[2] = 0.0
    right /= np.linalg.norm(right)
    away = up / np.linalg.norm(up)
    return np.column_stack([right, away, [0.0, 0.0, 1.0]])


class ActionMapper:
    """Turns a device's Command into a 4-float MetaWorld action."""

    def __init__(self, device_name: str, frame: str, basis: np.ndarray | None = None,
                 settings: ControlSettings | None = None):
        self.device_name = device_name
        self.frame = frame
        self.basis = np.eye(3) if basis is None or frame == "world" else np.asarray(basis, dtype=np.float64)
        self.settings = settings or ControlSettings()
        self.gripper = -1.0  # open until told otherwise

    def reset(self) -> None:
        self.gripper = -1.0

    def __call__(self, command: Command) -> np.ndarray:
        if not command.is_finite():
            raise ActionError(f"device {self.device_name!r} sent a non-finite command "
                              f"{command.translation}/{command.gripper}: refused before the simulator")
        move = np.asarray(command.translation, dtype=np.float64)
        if self.frame != "world":
            s = self.settings
            move = move * s.sensitivity * np.array([-1.0 if s.invert_x else 1.0,
                                                    -1.0 if s.invert_y else 1.0,
                                                    -1.0 if s.invert_z else 1.0])
            move = self.basis @ move
        if command.gripper is not None:
            self.gripper = float(np.clip(command.gripper, -1.0, 1.0))
        action = np.empty(4, dtype=np.float32)
        action[:3] = np.clip(move, -1.0, 1.0)
        action[3] = self.gripper
        return action

"""The views an operator or a video can watch: MetaWorld's cameras, and the toolkit's own.

MetaWorld's Sawyer scene has seven cameras (``corner``, ``corner2``, ``corner3``, ``corner4``,
``topview``, ``behindGripper``, ``gripperPOV``). Its ``corner`` camera looks at the table from 1.3 m
away and only 16 degrees above it: the table is a thin strip, most of the picture is wall, and depth
along the line of sight is hard to judge. The toolkit adds views of its own, rendered through
MuJoCo's free camera (nothing in the model changes, so recordings are unaffected):

- ``operator``: from the same side as ``corner``, 35 degrees above the table and 1 m from the middle
  of the workspace, so the table fills the picture, the arm stays to one side of it, and handles that
  face the robot (door, drawer) are seen. The live window's default.

:func:`camera_frame` gives any view's pose the way the picture shows it (the corner cameras render
upside down and are turned), so the mapping of keys to motion (:mod:`teleop.mapping`) and the
HUD's key labels follow the picture; :func:`project` puts a world point on that picture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The Sawyer scene's corner cameras render upside down; rotating 180 degrees fixes them.
UPSIDE_DOWN_CAMERAS = {"corner", "corner2", "corner3", "corner4"}


@dataclass(frozen=True)
class FreeView:
    """A view through MuJoCo's free camera: it looks at ``lookat`` from ``distance`` metres."""

    lookat: tuple[float, float, float]
    distance: float
    azimuth: float  # degrees about +z, 0 looking along +x
    elevation: float  # degrees, negative looks down

    def mjv_camera(self):
        import mujoco

        camera = mujoco.MjvCamera()
        camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        camera.lookat[:] = self.lookat
        camera.distance = self.distance
        camera.azimuth = self.azimuth
        camera.elevation = self.elevation
        return camera

    def forward(self) -> np.ndarray:
        az, el = np.radians(self.azimuth), np.radians(self.elevation)
        return np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])


VIEWS: dict[str, FreeView] = {
    "operator": FreeView(lookat=(0.0, 0.7, 0.1), distance=1.0, azimuth=30.0, elevation=-35.0),
}


def view_names(model) -> list[str]:
    """Every view the scene can be watched from: the model's cameras, then the toolkit's own."""
    return [model.camera(i).name for i in range(model.ncam)] + list(VIEWS)


def render_camera(name: str):
    """What ``mujoco.Renderer.update_scene(data, camera=...)`` takes for this view."""
    return VIEWS[name].mjv_camera() if name in VIEWS else name


@dataclass(frozen=True)
class CameraFrame:
    """A view's pose as its picture shows it: ``right`` and ``up`` point right and up on screen."""

    position: np.ndarray
    right: np.ndarray
    up: np.ndarray
    forward: np.ndarray
    fovy: float  # vertical field of view, degrees


def camera_frame(model, data, name: str) -> CameraFrame:
    if name in VIEWS:
        view = VIEWS[name]
        forward = view.forward()
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        up = np.cross(right, forward)
        position = np.asarray(view.lookat) - view.distance * forward
        return CameraFrame(position, right, up, forward, float(model.vis.global_.fovy))
    camera = data.cam(name)
    xmat = camera.xmat.reshape(3, 3)  # columns: camera x (right), y (up), z (back)
    right, up, forward = xmat[:, 0].copy(), xmat[:, 1].copy(), -xmat[:, 2].copy()
    if name in UPSIDE_DOWN_CAMERAS:  # the picture is turned 180 degrees
        right, up = -right, -up
    return CameraFrame(camera.xpos.copy(), right, up, forward, float(model.cam(name).fovy[0]))


def project(frame: CameraFrame, point, width: int, height: int) -> tuple[float, float] | None:
    """Pixel (x right, y down) of a world point on the view's picture; None behind the camera."""
    offset = np.asarray(point, dtype=np.float64) - frame.position
    depth = offset @ frame.forward
    if depth <= 1e-6:
        return None
    focal = 0.5 * height / np.tan(np.radians(frame.fovy) / 2)
    return (width / 2 + focal * (offset @ frame.right) / depth,
            height / 2 - focal * (offset @ frame.up) / depth)

"""The live window's render thread: the scene from a copied pose, and the HUD, into double-buffered frames.

The control loop (:mod:`teleop.live.control_loop`, main thread) publishes a copy of
the pose and the HUD state each tick; this thread turns the latest of them
into a picture at up to ``fps`` and hands it over by swapping two frame
Surfaces under a lock. The main thread blits the newest one to the screen
after its tick's work (:meth:`RenderThread.present`), so neither thread ever
waits on the other for more than that one blit (about 0.3 ms at 880x560).

:class:`SceneView` owns its own ``MjModel`` copy and ``MjData``: the render
thread recomputes the kinematics from the copied pose, so it never reads the
simulator's data while a step is writing it, and it can turn the upside-down
corner cameras in its copy (a 180-degree turn about the view axis gives the
same picture as rotating the image, without the 1 ms reversed-stride copy per
frame that rotating it cost here).

Depth cues, drawn into MuJoCo's scene as extra geoms (nothing in the simulation changes):

- under the gripper, a thin yellow line straight down and a yellow spot on the first surface it
  meets (the object's top, or the table): where the fingers would land, which the eye cannot
  judge along the line of sight. Shadows would say the same for twice the frame time (MuJoCo's
  shadow map costs 12-14 ms a frame at 480x480 on this machine's software GL, BENCHMARKS.md);
- the goal as a magenta ball, with a line down to the table when it floats (pick-place), in a
  colour no object uses; the task's own goal sites (red in reach-v3, like its puck) are hidden.

Software GL transforms every triangle it is given, seen or not, and the Sawyer's meshes hold 67,000
of them (about 6 ms of each picture at any size). So each view leaves out the geoms whose bounding
sphere lies wholly outside its view frustum (:func:`outside_frustum`): the gripperPOV camera does not
see the arm it hangs from, and its 180 px picture fell from 6.3 to 4.4 ms here (the operator view's
from 11.9 to 11.3) while staying pixel-identical (tests/test_live_hud.py).
"""

from __future__ import annotations

import collections
import copy
import threading
import time
from typing import Optional

import numpy as np

from teleop.cameras import UPSIDE_DOWN_CAMERAS, camera_frame, project, render_camera
from teleop.live.hud import GOAL_RGBA, Pose
from teleop.live.painter import MAX_SCENE, HudPainter, Layout
from teleop.live.timing import set_thread_nice

MARKER_RGBA = np.array([1.0, 0.85, 0.0, 0.9], dtype=np.float32)
TABLE_Z = 0.0  # the table top in MetaWorld's scenes
ROBOT_ROOT_BODY = "hand"  # every body under the same root as the hand belongs to the robot
CULLED_GROUP = 5  # a geom group no view shows (MuJoCo's default shows groups 0-2)


def outside_frustum(frame, centres: np.ndarray, radii: np.ndarray, aspect: float = 1.0) -> np.ndarray:
    """Which spheres lie wholly outside the camera's view (conservative: never one that shows a pixel).

    frame: a :class:`teleop.cameras.CameraFrame`; aspect: the picture's width / height.
    """
    offset = np.asarray(centres, dtype=np.float64) - frame.position
    x, y, z = offset @ frame.right, offset @ frame.up, offset @ frame.forward
    tan_y = np.tan(np.radians(frame.fovy) / 2)
    outside = z < -radii  # wholly behind the camera
    for lateral, tangent in ((x, aspect * tan_y), (y, tan_y)):
        # distance from each side plane through the camera (unit normal (±1, -tangent) / norm in (lateral, z))
        norm = np.hypot(1.0, tangent)
        outside |= (np.abs(lateral) - tangent * z) / norm > radii
    return outside


class SceneView:
    """Renders named views from copied poses; create and use it on one thread (GL contexts are per thread)."""

    def __init__(self, env, size: int, *, inset_size: int = 0, hidden_sites=()):
        import mujoco

        from teleop.env import fast_renderer

        self._mujoco = mujoco
        self._fast_renderer = fast_renderer
        self.model = copy.deepcopy(env.model)  # turning cameras here must not touch the simulator's model
        for name in UPSIDE_DOWN_CAMERAS:
            try:
                camera = self.model.camera(name)
            except KeyError:
                continue
            turned = np.empty(4)
            mujoco.mju_mulQuat(turned, camera.quat, np.array([0.0, 0.0, 0.0, 1.0]))  # 180 deg about local z
            camera.quat[:] = turned
        for name in hidden_sites:  # the task's goal sites: the goal is drawn as a marker instead
            self.model.site(name).rgba[3] = 0.0
        self.model.vis.global_.offwidth = max(self.model.vis.global_.offwidth, MAX_SCENE)
        self.model.vis.global_.offheight = max(self.model.vis.global_.offheight, MAX_SCENE)
        self.data = mujoco.MjData(self.model)
        self.renderer = self.inset = None
        self.resize(size, inset_size)
        self._pads = [self.model.site(n).id for n in ("rightEndEffector", "leftEndEffector")]
        root = self.model.body_rootid[self.model.body(ROBOT_ROOT_BODY).id]
        self._robot_bodies = {b for b in range(self.model.nbody) if self.model.body_rootid[b] == root}
        self.goal = np.zeros(3)
        # Geoms that can be left out of a picture: drawn ones with a finite bounding sphere (not planes).
        drawn = self.model.geom_group <= 2
        bounded = (self.model.geom_rbound > 0) & (self.model.geom_type != mujoco.mjtGeom.mjGEOM_PLANE)
        self._cullable = np.flatnonzero(drawn & bounded)
        self._groups = self.model.geom_group.copy()
        self.culled = 0  # geoms left out of the last picture

    def resize(self, size: int, inset_size: int = 0) -> None:
        if self.renderer is None or self.renderer.height != size:
            self._close(self.renderer)
            self.renderer = self._fast_renderer(self.model, size, size)
        if inset_size and (self.inset is None or self.inset.height != inset_size):
            self._close(self.inset)
            self.inset = self._fast_renderer(self.model, inset_size, inset_size)

    def set_pose(self, pose: Pose) -> None:
        self.data.qpos[:] = pose.qpos
        self.data.mocap_pos[:] = pose.mocap_pos
        self.data.mocap_quat[:] = pose.mocap_quat
        self.goal = pose.goal
        self._mujoco.mj_forward(self.model, self.data)

    @property
    def gripper(self) -> np.ndarray:
        """The point between the finger pads (MetaWorld's tcp_center)."""
        return self.data.site_xpos[self._pads].mean(axis=0)

    def render(self, camera: str, *, inset: bool = False, out: Optional[np.ndarray] = None) -> np.ndarray:
        """The upright picture with the depth cues, written into ``out`` when given (no per-frame allocation)."""
        renderer = self.inset if inset else self.renderer
        ids = self._cullable
        hidden = ids[outside_frustum(self.frame(camera), self.data.geom_xpos[ids], self.model.geom_rbound[ids],
                                     renderer.width / renderer.height)]
        self.model.geom_group[hidden] = CULLED_GROUP
        try:
            renderer.update_scene(self.data, camera=render_camera(camera))
        finally:
            self.model.geom_group[hidden] = self._groups[hidden]
        self.culled = len(hidden)
        self._add_markers(renderer.scene)
        return renderer.render(out=out)

    def frame(self, camera: str):
        """The view's pose as its picture shows it (this copy's corner cameras are already turned)."""
        frame = camera_frame(self.model, self.data, camera)
        if camera in UPSIDE_DOWN_CAMERAS:  # camera_frame turns them for the simulator's model; undo that here
            frame = type(frame)(frame.position, -frame.right, -frame.up, frame.forward, frame.fovy)
        return frame

    def surface_below(self, point: np.ndarray) -> float:
        """Height of the first surface straight below ``point`` that is not the robot (the table if none)."""
        mj = self._mujoco
        start = np.array(point, dtype=np.float64)
        down = np.array([0.0, 0.0, -1.0])
        hit = np.zeros(1, dtype=np.int32)
        for _ in range(8):  # skip the robot's own fingers and links
            distance = mj.mj_ray(self.model, self.data, start, down, None, 1, -1, hit)
            if distance < 0 or hit[0] < 0:
                return TABLE_Z
            if self.model.geom_bodyid[hit[0]] not in self._robot_bodies:
                return max(TABLE_Z, start[2] - distance)
            start[2] -= distance + 1e-4
        return TABLE_Z

    def _add_markers(self, scene) -> None:
        mj = self._mujoco
        tip = self.gripper
        below = self.surface_below(tip)
        spot = np.array([tip[0], tip[1], below + 0.0008])
        self._connector(scene, tip, spot, 0.0015, MARKER_RGBA * [1, 1, 1, 0.6])
        self._geom(scene, mj.mjtGeom.mjGEOM_CYLINDER, [0.011, 0.0007, 0.0], spot, MARKER_RGBA)
        goal = np.asarray(self.goal, dtype=np.float64)
        if np.any(goal):
            rgba = np.array(GOAL_RGBA, dtype=np.float32)
            self._geom(scene, mj.mjtGeom.mjGEOM_SPHERE, [0.016, 0.0, 0.0], goal, rgba)
            if goal[2] > TABLE_Z + 0.04:  # floating: a line down to the table says where it is
                foot = np.array([goal[0], goal[1], TABLE_Z + 0.0008])
                self._connector(scene, goal, foot, 0.001, rgba * [1, 1, 1, 0.6])
                self._geom(scene, mj.mjtGeom.mjGEOM_CYLINDER, [0.01, 0.0007, 0.0], foot, rgba * [1, 1, 1, 0.6])

    def _geom(self, scene, kind, size, pos, rgba) -> None:
        if scene.ngeom >= scene.maxgeom:
            return
        self._mujoco.mjv_initGeom(scene.geoms[scene.ngeom], kind, np.asarray(size, dtype=np.float64),
                                  np.asarray(pos, dtype=np.float64), np.eye(3).ravel(),
                                  np.asarray(rgba, dtype=np.float32))
        scene.ngeom += 1

    def _connector(self, scene, start, end, width, rgba) -> None:
        if scene.ngeom >= scene.maxgeom or np.linalg.norm(np.subtract(start, end)) < 1e-4:
            return
        geom = scene.geoms[scene.ngeom]
        self._mujoco.mjv_initGeom(geom, self._mujoco.mjtGeom.mjGEOM_CAPSULE, np.zeros(3), np.zeros(3),
                                  np.eye(3).ravel(), np.asarray(rgba, dtype=np.float32))
        self._mujoco.mjv_connector(geom, self._mujoco.mjtGeom.mjGEOM_CAPSULE, width,
                                   np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64))
        scene.ngeom += 1

    @staticmethod
    def _close(renderer) -> None:
        if renderer is not None:
            try:
                renderer.close()
            except Exception:  # noqa: BLE001 - a GL context torn down at exit must not mask real errors
                pass

    def close(self) -> None:
        self._close(self.renderer)
        self._close(self.inset)


def key_arrows(view: SceneView, camera: str, basis: np.ndarray, labels: tuple[str, str], size: int):
    """Where the main view's "right" and "up the screen" keys move the gripper in another view's picture."""
    frame = view.frame(camera)
    tip = view.gripper
    start = project(frame, tip, size, size)
    arrows = []
    for label, axis in zip(labels, (basis[:, 0], basis[:, 1])):
        end = project(frame, tip + 0.03 * axis, size, size)
        if start is not None and end is not None:
            arrows.append((label, (end[0] - start[0], end[1] - start[1])))
    return arrows


class RenderThread(threading.Thread):
    """Draws the latest pose and HUD at up to ``fps``; the main thread shows them with :meth:`present`.

    ``basis``: the main view's key directions (:func:`teleop.mapping.view_basis`), for the second
    view's arrows; ``arrow_labels``: what the keys for "right" and "up the screen" are called.
    """

    def __init__(self, env, control, config, stats, *, layout: Layout, help_lines: tuple, basis: np.ndarray,
                 arrow_labels: tuple[str, str]):
        super().__init__(name="teleop-render", daemon=True)
        self.env, self.control, self.config, self.stats = env, control, config, stats
        self.layout, self.help_lines, self.basis, self.arrow_labels = layout, help_lines, basis, arrow_labels
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.error: Optional[BaseException] = None
        self._lock = threading.Lock()
        self._front = None  # the newest finished frame (a pygame Surface)
        self._fresh = False  # _front not shown yet

    def present(self, screen) -> bool:
        """Main thread: blit the newest finished frame onto ``screen``; False when there is none new."""
        with self._lock:
            if not self._fresh:
                return False
            screen.blit(self._front, (0, 0))
            self._fresh = False
        return True

    def _publish(self, frame):
        """Make ``frame`` the front one; returns the surface to draw the next frame into."""
        with self._lock:
            self._front, frame = frame, self._front
            self._fresh = True
        return frame

    def _painter(self, layout: Layout) -> HudPainter:
        config = self.config
        return HudPainter(layout, view_name=config.camera, inset_name=config.second_camera,
                          help_lines=self.help_lines, render_size=config.render_size)

    def run(self) -> None:
        # Before the renderer exists, so Mesa's llvmpipe thread inherits the lower priority too.
        set_thread_nice(self.config.render_nice)
        view = None
        try:
            config, layout = self.config, self.layout
            painter = self._painter(layout)
            view = SceneView(self.env, painter.render_side, inset_size=layout.inset,
                             hidden_sites=self.env.target_site_names())
            back, self._front = painter.new_frame(), painter.new_frame()
            self.ready.set()
            period = 1.0 / config.fps
            recent: collections.deque = collections.deque(maxlen=30)
            frame = 0
            arrows: list = []
            next_time = time.perf_counter()
            while not self.stopping.is_set():
                started = time.perf_counter()
                pose, hud = self.control.pose, self.control.hud
                if pose is None or hud is None:
                    time.sleep(0.005)
                    continue
                wanted = self.control.window_size
                if wanted is not None and wanted != painter.size:
                    layout = Layout.fit(*wanted, inset=bool(config.second_camera), help_lines=len(self.help_lines))
                    painter = self._painter(layout)
                    view.resize(painter.render_side, layout.inset)
                    back = painter.new_frame()
                    with self._lock:
                        self._front, self._fresh = painter.new_frame(), False
                view.set_pose(pose)
                view.render(config.camera, out=painter.scene)
                if painter.inset is not None and frame % 2 == 0:  # half rate: it is small
                    view.render(config.second_camera, inset=True, out=painter.inset)
                    arrows = key_arrows(view, config.second_camera, self.basis, self.arrow_labels, layout.inset)
                recent.append(started)
                fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 else 0.0
                painter.compose(back, hud, fps, arrows)
                back = self._publish(back)
                self.stats.render_durations.append(time.perf_counter() - started)
                frame += 1
                next_time = max(next_time + period, time.perf_counter())
                time.sleep(max(0.0, next_time - time.perf_counter()))
        except BaseException as error:  # noqa: BLE001 - handed to the main thread
            self.error = error
            self.ready.set()
        finally:
            if view is not None:
                view.close()

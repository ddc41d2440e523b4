"""The live window's render thread: the scene from a copied pose, and the HUD, into double-buffered frames.

The control loop (:mod:`teleop.live.control_loop`, main thread) publishes a copy of
the pose and the HUD state each tick; this thread turns the latest of them
into a picture at up to ``fps`` and hands it over by swapping two frame
Surfaces under a lock. The main thread blits the newest one to the screen
after its tick's work (:meth:`RenderThread.present`), so neither thread ever
waits on the other for more than that one blit (about 0.3 ms at 820x560).

:class:`SceneView` owns its own ``MjModel`` copy and ``MjData``: the render
thread recomputes the kinematics from the copied pose, so it never reads the
simulator's data while a step is writing it, and it can turn the upside-down
corner cameras in its copy (a 180-degree turn about the view axis gives the
same picture as rotating the image, without the 1 ms reversed-stride copy per
frame that rotating it cost here).
"""

from __future__ import annotations

import collections
import copy
import threading
import time
from typing import Optional

import numpy as np

from teleop.live.hud import INSET_SIZE, HudPainter, Pose, set_thread_nice


class SceneView:
    """Renders named cameras from copied poses; create and use it on one thread (GL contexts are per thread)."""

    def __init__(self, env, size: int, *, inset_camera: Optional[str] = None):
        import mujoco

        from teleop.env import UPSIDE_DOWN_CAMERAS, fast_renderer

        self._mujoco = mujoco
        self.model = copy.deepcopy(env.model)  # turning cameras here must not touch the simulator's model
        for name in UPSIDE_DOWN_CAMERAS:
            try:
                camera = self.model.camera(name)
            except KeyError:
                continue
            turned = np.empty(4)
            mujoco.mju_mulQuat(turned, camera.quat, np.array([0.0, 0.0, 0.0, 1.0]))  # 180 deg about local z
            camera.quat[:] = turned
        self.data = mujoco.MjData(self.model)
        self.renderer = fast_renderer(self.model, size, size)
        self.inset = fast_renderer(self.model, INSET_SIZE, INSET_SIZE) if inset_camera else None

    def set_pose(self, pose: Pose) -> None:
        self.data.qpos[:] = pose.qpos
        self.data.mocap_pos[:] = pose.mocap_pos
        self.data.mocap_quat[:] = pose.mocap_quat
        self._mujoco.mj_forward(self.model, self.data)

    def render(self, camera: str, *, inset: bool = False, out: Optional[np.ndarray] = None) -> np.ndarray:
        """The upright picture, written into ``out`` when given (no per-frame allocation)."""
        renderer = self.inset if inset else self.renderer
        renderer.update_scene(self.data, camera=camera)
        return renderer.render(out=out)

    def close(self) -> None:
        for renderer in (self.renderer, self.inset):
            if renderer is not None:
                try:
                    renderer.close()
                except Exception:  # noqa: BLE001 - a GL context torn down at exit must not mask real errors
                    pass


class RenderThread(threading.Thread):
    """Draws the latest pose and HUD at up to ``fps``; the main thread shows them with :meth:`present`."""

    def __init__(self, env, control, config, stats):
        super().__init__(name="teleop-render", daemon=True)
        self.env, self.control, self.config, self.stats = env, control, config, stats
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

    def run(self) -> None:
        # Before the renderer exists, so Mesa's llvmpipe thread inherits the lower priority too.
        set_thread_nice(self.config.render_nice)
        view = None
        try:
            config = self.config
            view = SceneView(self.env, config.view_size, inset_camera=config.second_camera)
            painter = HudPainter(config.view_size, inset=bool(config.second_camera))
            back, self._front = painter.new_frame(), painter.new_frame()
            self.ready.set()
            period = 1.0 / config.fps
            recent: collections.deque = collections.deque(maxlen=30)
            frame = 0
            next_time = time.perf_counter()
            while not self.stopping.is_set():
                started = time.perf_counter()
                pose, hud = self.control.pose, self.control.hud
                if pose is None or hud is None:
                    time.sleep(0.005)
                    continue
                view.set_pose(pose)
                view.render(config.camera, out=painter.scene)
                if config.second_camera and (frame % 2 == 0):  # half rate: it is small
                    view.render(config.second_camera, inset=True, out=painter.inset)
                recent.append(started)
                fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 else 0.0
                painter.compose(back, hud, fps)
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

"""What the live window shows: the scene from the operator's camera, and the HUD beside it.

:class:`RenderThread` draws; :func:`open_window` and :func:`help_lines_for` are
the main thread's share (opening the window, the help text). Everything else
here runs on the render thread. :class:`SceneView` owns its own
``MjData`` and renderer: the control thread hands over a copy of the pose
(qpos and the mocap targets MetaWorld moves the hand with), and the render
thread recomputes the kinematics on its copy, so it never reads the
simulator's data while a step is writing it. :func:`hud_lines` is pure, so
what the operator is told is tested without a window.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from teleop.errors import ToolkitError

PANEL_WIDTH = 340
INSET_SIZE = 160  # picture-in-picture side for --second-camera
WHITE, GREY, RED, GREEN, YELLOW, BLUE, ORANGE = (
    (235, 235, 235), (150, 150, 150), (235, 60, 60), (70, 210, 90), (240, 200, 60), (110, 160, 255), (255, 150, 40))
PHASE_COLORS = {"idle": WHITE, "recording": RED, "paused": YELLOW, "review": BLUE, "done": GREY}


@dataclass(frozen=True)
class Pose:
    """The part of MjData the picture depends on, copied by the control thread after each change."""

    qpos: np.ndarray
    mocap_pos: np.ndarray
    mocap_quat: np.ndarray


@dataclass(frozen=True)
class HudState:
    task: str
    episode: int  # 1-based number of the episode being recorded
    episodes: int
    phase: str  # teleop.flow.Phase value
    steps: int
    control_hz: float
    device: str
    device_status: str
    seed: int
    spawn_index: int
    success: bool = False
    end_reason: str = ""
    device_lost: bool = False
    settings: str = ""
    help_lines: tuple = field(default_factory=tuple)
    progress: tuple = field(default_factory=tuple)  # the episode source's lines (a session's block, counts)
    reminder: str = ""  # a break reminder, until the operator pauses


def phase_label(state: HudState) -> str:
    if state.device_lost:
        return "PAUSED - device unplugged"
    return {"idle": "READY - move or press record to start", "recording": "RECORDING",
            "paused": "PAUSED", "review": "REVIEW - keep or discard", "done": "DONE"}[state.phase]


def hud_lines(state: HudState) -> list[tuple[str, tuple, bool]]:
    """(text, colour, large) for each line of the side panel, top to bottom."""
    elapsed = state.steps / state.control_hz
    lines = [
        (state.task, WHITE, True),
        (f"episode {state.episode} of {state.episodes}", WHITE, False),
        *((text, BLUE, False) for text in state.progress),
        (phase_label(state), ORANGE if state.device_lost else PHASE_COLORS[state.phase], True),
        (f"time {elapsed:5.1f} s   step {state.steps}", WHITE, False),
        (f"spawn seed {state.seed} (#{state.spawn_index})", WHITE, False),
        (f"{state.device}: {state.device_status}", ORANGE if state.device_lost else GREY, False),
    ]
    if state.settings:
        lines.append((state.settings, GREY, False))
    if state.reminder:
        lines.append((state.reminder, YELLOW, False))
    if state.success:
        lines.append(("SUCCESS", GREEN, True))
    elif state.phase == "review" and state.end_reason:
        lines.append((f"ended: {state.end_reason}", YELLOW, False))
    lines.append(("", WHITE, False))
    lines += [(text, GREY, False) for text in state.help_lines]
    return lines


def banner(state: HudState) -> Optional[tuple[str, tuple]]:
    """Large text over the scene, for what the operator must not miss."""
    if state.device_lost:
        return "DEVICE UNPLUGGED: plug it back in to resume", ORANGE
    if state.success:
        return "SUCCESS", GREEN
    if state.phase == "paused":
        return "PAUSED", YELLOW
    if state.phase == "review":
        return "keep or discard?", BLUE
    if state.reminder and state.phase == "idle":  # between episodes only: never over a recording
        return "time for a break (P)", YELLOW
    return None


class SceneView:
    """Renders named cameras from copied poses; create and use it on one thread (GL contexts are per thread)."""

    def __init__(self, env, size: int, *, inset_camera: Optional[str] = None):
        import mujoco

        from teleop.env import UPSIDE_DOWN_CAMERAS, fast_renderer

        self._mujoco = mujoco
        self._upside_down = UPSIDE_DOWN_CAMERAS
        self.model = env.model
        self.data = mujoco.MjData(env.model)
        self.renderer = fast_renderer(env.model, size, size)
        self.inset = fast_renderer(env.model, INSET_SIZE, INSET_SIZE) if inset_camera else None

    def set_pose(self, pose: Pose) -> None:
        self.data.qpos[:] = pose.qpos
        self.data.mocap_pos[:] = pose.mocap_pos
        self.data.mocap_quat[:] = pose.mocap_quat
        self._mujoco.mj_forward(self.model, self.data)

    def render(self, camera: str, *, inset: bool = False) -> np.ndarray:
        renderer = self.inset if inset else self.renderer
        renderer.update_scene(self.data, camera=camera)
        image = renderer.render()
        return image[::-1, ::-1] if camera in self._upside_down else image

    def close(self) -> None:
        for renderer in (self.renderer, self.inset):
            if renderer is not None:
                try:
                    renderer.close()
                except Exception:  # noqa: BLE001 - a GL context torn down at exit must not mask real errors
                    pass


class HudPainter:
    """Composes the scene image(s) and the HUD into one pygame Surface (render thread)."""

    def __init__(self, view_size: int):
        import pygame

        self.pygame = pygame
        self.view_size = view_size
        self.size = (view_size + PANEL_WIDTH, max(view_size, 560))
        self.small = pygame.font.Font(None, 20)
        self.large = pygame.font.Font(None, 30)
        self.huge = pygame.font.Font(None, 44)
        self._text_cache: dict = {}  # font.render holds the GIL: the help lines are drawn once, not per frame

    def _text(self, font, text: str, colour):
        key = (id(font), text, colour)
        surface = self._text_cache.get(key)
        if surface is None:
            if len(self._text_cache) > 500:  # the elapsed-time line changes every frame
                self._text_cache.clear()
            surface = self._text_cache[key] = font.render(text, True, colour)
        return surface

    def compose(self, image: np.ndarray, inset: Optional[np.ndarray], state: HudState, fps: float):
        pg = self.pygame
        surface = pg.Surface(self.size)
        surface.fill((24, 24, 28))
        h, w = image.shape[:2]
        surface.blit(pg.image.frombuffer(np.ascontiguousarray(image).tobytes(), (w, h), "RGB"), (0, 0))
        if inset is not None:
            ih, iw = inset.shape[:2]
            x = self.view_size - iw - 6
            surface.blit(pg.image.frombuffer(np.ascontiguousarray(inset).tobytes(), (iw, ih), "RGB"), (x, 6))
            pg.draw.rect(surface, WHITE, (x - 1, 5, iw + 2, ih + 2), 1)
        if state.phase == "recording" and not state.device_lost:
            pg.draw.circle(surface, RED, (18, 18), 9)
        shown = banner(state)
        if shown:
            text = self._text(self.huge, shown[0], shown[1])
            box = text.get_rect(center=(self.view_size // 2, self.view_size // 2))
            pg.draw.rect(surface, (0, 0, 0), box.inflate(20, 12))
            surface.blit(text, box)
        y = 10
        for line, colour, large in hud_lines(state):
            font = self.large if large else self.small
            surface.blit(self._text(font, line, colour), (self.view_size + 12, y))
            y += font.get_linesize() + 2
        surface.blit(self.small.render(f"display {fps:4.1f} fps", True, GREY), (self.view_size + 12, self.size[1] - 22))
        return surface


class RenderThread(threading.Thread):
    """Draws the latest pose and HUD at up to ``fps``; hands finished frames to the main thread."""

    def __init__(self, env, control, config, stats, frame_event: int):
        super().__init__(name="teleop-render", daemon=True)
        self.env, self.control, self.config, self.stats = env, control, config, stats
        self.frame_event = frame_event
        self.frame = None  # the newest composed pygame Surface
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        import pygame

        set_thread_nice(self.config.render_nice)
        view = None
        try:
            view = SceneView(self.env, self.config.view_size, inset_camera=self.config.second_camera)
            painter = HudPainter(self.config.view_size)
            self.ready.set()
            period = 1.0 / self.config.fps
            recent: collections.deque = collections.deque(maxlen=30)
            inset = None
            frame = 0
            next_time = time.perf_counter()
            while not self.stopping.is_set():
                started = time.perf_counter()
                pose, hud = self.control.pose, self.control.hud
                if pose is None or hud is None:
                    time.sleep(0.005)
                    continue
                view.set_pose(pose)
                image = view.render(self.config.camera)
                if self.config.second_camera and (inset is None or frame % 2 == 0):  # half rate: it is small
                    inset = view.render(self.config.second_camera, inset=True)
                recent.append(started)
                fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 else 0.0
                self.frame = painter.compose(image, inset, hud, fps)
                self.stats.render_durations.append(time.perf_counter() - started)
                pygame.event.post(pygame.event.Event(self.frame_event))
                frame += 1
                next_time = max(next_time + period, time.perf_counter())
                time.sleep(max(0.0, next_time - time.perf_counter()))
        except BaseException as error:  # noqa: BLE001 - handed to the main thread
            self.error = error
            self.ready.set()
        finally:
            if view is not None:
                view.close()


def open_window(config, device_name: str):
    """Open the live window (main thread); one-line errors where there is no display."""
    import pygame

    # Only what the window uses: pygame.init() would also open the sound card.
    try:
        pygame.display.init()
    except pygame.error as error:
        raise ToolkitError(f"cannot open the teleop window ({error}): run it on a desktop session, or under "
                           "Xvfb (xvfb-run teleop record ...)") from None
    if pygame.display.get_driver() in ("offscreen", "dummy") and not os.environ.get("SDL_VIDEODRIVER"):
        # SDL fell back to an invisible window: the operator would see nothing.
        pygame.display.quit()
        raise ToolkitError("no display found (DISPLAY is not set): run it on a desktop session, or under Xvfb "
                           "(xvfb-run teleop record ...); SDL_VIDEODRIVER=dummy runs it without a window")
    pygame.font.init()
    pygame.joystick.init()
    try:
        screen = pygame.display.set_mode((config.view_size + PANEL_WIDTH, max(config.view_size, 560)))
    except pygame.error as error:
        raise ToolkitError(f"cannot open the teleop window ({error}): run it on a desktop session, or under "
                           "Xvfb (xvfb-run teleop record ...)") from None
    pygame.display.set_caption(f"teleop record: {config.task} ({device_name})")
    return screen


def help_lines_for(device) -> list[str]:
    """The device's bindings, and for a pad or SpaceMouse the window keys that still work."""
    from devices.keyboard import DEFAULT_KEY_BINDINGS, bindings_help

    lines = list(device.bindings_help()) if hasattr(device, "bindings_help") else []
    layout = getattr(device, "layout", None)
    if device.name == "spacemouse" and layout is not None:
        from devices.actions import ACTION_TEXT

        lines = ["push / pull / lift the cap: move in the view"]
        lines += [f"{button} button: {ACTION_TEXT[action]}" for button, action in layout.button_actions.items()]
    if device.name != "keyboard" and device.frame != "world":
        from devices.actions import EVENT_ACTIONS

        lines += bindings_help({k: a for k, a in DEFAULT_KEY_BINDINGS.items() if a in EVENT_ACTIONS})
    return lines


def set_thread_nice(nice: int) -> bool:
    """Set the calling thread's nice value; False where the OS does not allow it.

    Linux keeps a nice value per thread and new threads inherit it, so calling
    this on the render thread before the renderer exists also covers Mesa's
    llvmpipe threads. Raising priority (nice < 0) needs root or CAP_SYS_NICE;
    without it the loop runs as before, just with less protection from load.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        return True
    except (AttributeError, OSError):  # not Linux, or not permitted
        return False

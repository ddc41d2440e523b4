"""What the live window shows: the scene from the operator's camera, and the HUD beside it.

Everything here runs on the render thread. :class:`SceneView` owns its own
``MjData`` and renderer: the control thread hands over a copy of the pose
(qpos and the mocap targets MetaWorld moves the hand with), and the render
thread recomputes the kinematics on its copy, so it never reads the
simulator's data while a step is writing it. :func:`hud_lines` is pure, so
what the operator is told is tested without a window.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

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
        (phase_label(state), ORANGE if state.device_lost else PHASE_COLORS[state.phase], True),
        (f"time {elapsed:5.1f} s   step {state.steps}", WHITE, False),
        (f"spawn seed {state.seed} (#{state.spawn_index})", WHITE, False),
        (f"{state.device}: {state.device_status}", ORANGE if state.device_lost else GREY, False),
    ]
    if state.settings:
        lines.append((state.settings, GREY, False))
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


def set_thread_nice(nice: int) -> bool:
    """Set the calling thread's nice value; False where the OS does not allow it.

    Linux keeps a nice value per thread and new threads inherit it, so calling
    this on the render thread before the renderer exists also covers Mesa's
    llvmpipe threads. Raising priority (nice < 0) needs root or CAP_SYS_NICE;
    without it the loop runs as before, just with less protection from load.
    """
    try:
        import threading

        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        return True
    except (AttributeError, OSError):  # not Linux, or not permitted
        return False

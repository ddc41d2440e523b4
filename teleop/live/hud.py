"""What the live window shows: the scene from the operator's camera, and the HUD beside it.

:class:`HudPainter` composes frames on the render thread (:mod:`teleop.live.render`);
:func:`open_window` and :func:`help_lines_for` are the main thread's share
(opening the window, the help text). The control loop publishes a
:class:`Pose` copy and a :class:`HudState` each tick. :func:`hud_lines` is
pure, so what the operator is told is tested without a window.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from teleop.errors import ToolkitError

PANEL_WIDTH = 340
BACKGROUND = (24, 24, 28)
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
    phase: str  # teleop.live.flow.Phase value
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


class HudPainter:
    """Composes the scene image(s) and the HUD into frame Surfaces (render thread).

    Per frame it only blits: the scene is rendered straight into ``scene``,
    whose memory a Surface shares (no conversion or copy in numpy), and the
    side panel is a Surface of its own in which only the lines that changed
    are redrawn (while recording, the time line and the fps line); font
    rendering holds the GIL, which the control loop needs on time.
    """

    def __init__(self, view_size: int, *, inset: bool = False):
        import pygame

        self.pygame = pygame
        self.view_size = view_size
        self.size = (view_size + PANEL_WIDTH, max(view_size, 560))
        self.small = pygame.font.Font(None, 20)
        self.large = pygame.font.Font(None, 30)
        self.huge = pygame.font.Font(None, 44)
        self.scene = np.zeros((view_size, view_size, 3), np.uint8)  # SceneView renders into this
        self._scene_surface = pygame.image.frombuffer(self.scene, (view_size, view_size), "RGB")
        self.inset = np.zeros((INSET_SIZE, INSET_SIZE, 3), np.uint8) if inset else None
        self._inset_surface = (pygame.image.frombuffer(self.inset, (INSET_SIZE, INSET_SIZE), "RGB")
                               if inset else None)
        self._panel = pygame.Surface((PANEL_WIDTH, self.size[1]))
        self._panel.fill(BACKGROUND)
        self._shown: list = []  # the panel's lines as drawn now, fps line last
        self._banners: dict = {}

    def new_frame(self):
        """A frame Surface; the area below a small scene is never drawn on, so it is filled once here."""
        frame = self.pygame.Surface(self.size)
        frame.fill(BACKGROUND)
        return frame

    def _update_panel(self, lines: list) -> None:
        same_layout = len(lines) == len(self._shown) and all(
            new[2] == old[2] for new, old in zip(lines, self._shown))
        if not same_layout:
            self._panel.fill(BACKGROUND)
        y = 10
        for i, (text, colour, large) in enumerate(lines):
            font = self.large if large else self.small
            height = font.get_linesize() + 2
            if i == len(lines) - 1:
                y = self.size[1] - 22  # the fps line sits at the bottom
            if not same_layout or lines[i] != self._shown[i]:
                if same_layout:
                    self._panel.fill(BACKGROUND, (0, y, PANEL_WIDTH, height))
                if text:
                    self._panel.blit(font.render(text, True, colour), (12, y))
            y += height
        self._shown = lines

    def compose(self, frame, state: HudState, fps: float) -> None:
        """Draw ``state`` and the current ``scene`` (and ``inset``) pixels into ``frame``."""
        pg = self.pygame
        frame.blit(self._scene_surface, (0, 0))
        if self._inset_surface is not None:
            x = self.view_size - INSET_SIZE - 6
            frame.blit(self._inset_surface, (x, 6))
            pg.draw.rect(frame, WHITE, (x - 1, 5, INSET_SIZE + 2, INSET_SIZE + 2), 1)
        if state.phase == "recording" and not state.device_lost:
            pg.draw.circle(frame, RED, (18, 18), 9)
        shown = banner(state)
        if shown:
            text = self._banners.get(shown)
            if text is None:  # a handful of fixed messages: render each once
                text = self._banners[shown] = self.huge.render(shown[0], True, shown[1])
            box = text.get_rect(center=(self.view_size // 2, self.view_size // 2))
            pg.draw.rect(frame, (0, 0, 0), box.inflate(20, 12))
            frame.blit(text, box)
        self._update_panel(hud_lines(state) + [(f"display {fps:4.1f} fps", GREY, False)])
        frame.blit(self._panel, (self.view_size, 0))


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

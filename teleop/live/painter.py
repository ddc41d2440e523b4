"""Drawing the live window: the scene fills the left, the side panel holds the status, the second
view and the help. Runs on the render thread (:mod:`teleop.live.render`); the text it draws comes
from :mod:`teleop.live.hud`.

::

    +-------------------------------+-------------------+
    | READY ...            SUCCESS  | task              |
    |                               | status lines      |
    |        the scene              | second view       |
    |   (never covered in the       |  (with the keys'  |
    |    middle)                    |   directions)     |
    | prompt line       speed 0.5x  | help              |
    +-------------------------------+-------------------+

:class:`Layout` places everything for a window size, so the window can be resized: the scene is
the largest square left of the panel. Per frame the painter only blits: the scene is rendered
straight into ``scene`` (shared with a Surface, no copy), and panel lines are redrawn only when
their text changes (font rendering holds the GIL, which the control loop needs on time).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from teleop.errors import ToolkitError
from teleop.live.hud import GREY, WHITE, HudState, badges, hud_lines, prompt

PANEL_WIDTH = 320
BACKGROUND = (24, 24, 28)
MIN_SCENE, MAX_SCENE = 200, 1024
MIN_INSET = 96
STATUS_HEIGHT = 236  # the status lines (a session adds up to four)
HELP_LINE = 17
MARGIN = 10
SMALL, LARGE, BADGE = 19, 28, 24  # font sizes


@dataclass(frozen=True)
class Layout:
    width: int
    height: int
    scene: int  # side of the square scene, at (0, 0)
    inset: int  # side of the second view in the panel (0: none)
    inset_y: int
    help_y: int

    @classmethod
    def fit(cls, width: int, height: int, *, inset: bool, help_lines: int) -> "Layout":
        scene = int(np.clip(min(width - PANEL_WIDTH, height), MIN_SCENE, MAX_SCENE))
        width, height = max(width, scene + PANEL_WIDTH), max(height, scene)
        help_height = help_lines * HELP_LINE + HELP_LINE + MARGIN  # + the fps line
        help_y = height - help_height
        side = 0
        if inset:
            room = help_y - STATUS_HEIGHT - HELP_LINE - 2 * MARGIN
            side = int(np.clip(room, MIN_INSET, PANEL_WIDTH - 2 * MARGIN))
        return cls(width, height, scene, side, STATUS_HEIGHT + HELP_LINE + MARGIN, help_y)

    @classmethod
    def default(cls, view_size: int, *, inset: bool, help_lines: int) -> "Layout":
        """The first window: the scene at ``view_size``, taller when the panel needs it."""
        need = STATUS_HEIGHT + (HELP_LINE + MARGIN + 180 if inset else 0) + (help_lines + 1) * HELP_LINE + 2 * MARGIN
        side = max(view_size, need)
        return cls.fit(side + PANEL_WIDTH, side, inset=inset, help_lines=help_lines)


def fit_text(font, text: str, width: int) -> str:
    """``text`` shortened with "..." until it fits ``width`` pixels in ``font``: never cut at the edge."""
    if font.size(text)[0] <= width:
        return text
    while text and font.size(text + "...")[0] > width:
        text = text[:-1]
    return text.rstrip() + "..."


class HudPainter:
    """Composes the scene image(s) and the HUD into frame Surfaces for one :class:`Layout`."""

    def __init__(self, layout: Layout, *, view_name: str, inset_name: Optional[str], help_lines: tuple,
                 render_size: Optional[int] = None):
        import pygame

        self.pygame = pygame
        self.layout = layout
        self.view_name, self.inset_name = view_name, inset_name
        self.help_lines = tuple(help_lines)
        self.small = pygame.font.Font(None, SMALL)
        self.large = pygame.font.Font(None, LARGE)
        self.badge_font = pygame.font.Font(None, BADGE)
        # SceneView renders into ``scene``: at most ``render_size`` pixels a side, scaled up to the layout's
        # scene when that is larger (software GL's time grows with the pixels). OpenCV's bilinear resize
        # takes ~1 ms for 400 -> 560 px; pygame's smoothscale took ~20 on the same 24-bit picture.
        self.render_side = min(layout.scene, render_size or layout.scene)
        self.scene = np.zeros((self.render_side, self.render_side, 3), np.uint8)
        self._scaled = None if self.render_side == layout.scene else np.zeros((layout.scene, layout.scene, 3), np.uint8)
        shown = self.scene if self._scaled is None else self._scaled
        self._scene_surface = pygame.image.frombuffer(shown, (layout.scene, layout.scene), "RGB")
        side = layout.inset
        self.inset = np.zeros((side, side, 3), np.uint8) if side else None
        self._inset_surface = pygame.image.frombuffer(self.inset, (side, side), "RGB") if side else None
        self._panel = pygame.Surface((PANEL_WIDTH, layout.height))
        self._panel.fill(BACKGROUND)
        self._shown: list = []  # the status lines as drawn now
        self._texts: dict = {}  # (text, colour, font) -> rendered Surface, for the few fixed labels
        self._draw_static_panel()

    @property
    def size(self) -> tuple[int, int]:
        return self.layout.width, self.layout.height

    def new_frame(self):
        frame = self.pygame.Surface(self.size)
        frame.fill(BACKGROUND)
        return frame

    # ---- text --------------------------------------------------------------------------------
    def _text(self, text: str, colour: tuple, font) -> "object":
        key = (text, colour, id(font))
        surface = self._texts.get(key)
        if surface is None:
            surface = font.render(text, True, colour)
            if len(self._texts) > 256:  # changing texts (timers) must not grow this forever
                self._texts.clear()
            self._texts[key] = surface
        return surface

    def _draw_static_panel(self) -> None:
        """The help lines and the second view's caption: drawn once per layout."""
        layout, panel = self.layout, self._panel
        y = layout.help_y
        room = PANEL_WIDTH - 2 * MARGIN
        for text in self.help_lines:
            panel.blit(self.small.render(fit_text(self.small, text, room), True, GREY), (MARGIN, y))
            y += HELP_LINE
        if self.inset is not None:
            caption = fit_text(self.small, f"{self.inset_name}: keys still follow the main view", room)
            panel.blit(self.small.render(caption, True, GREY), (MARGIN, layout.inset_y - HELP_LINE))

    def _update_status(self, lines: list) -> None:
        same_layout = len(lines) == len(self._shown) and all(
            new[2] == old[2] for new, old in zip(lines, self._shown))
        if not same_layout:
            self._panel.fill(BACKGROUND, (0, 0, PANEL_WIDTH, STATUS_HEIGHT))
        y = MARGIN
        for i, (text, colour, large) in enumerate(lines):
            font = self.large if large else self.small
            height = font.get_linesize() + 2
            if y + height > STATUS_HEIGHT:
                break
            if not same_layout or lines[i] != self._shown[i]:
                if same_layout:
                    self._panel.fill(BACKGROUND, (0, y, PANEL_WIDTH, height))
                if text:
                    shown = fit_text(font, text, PANEL_WIDTH - 2 * MARGIN)
                    self._panel.blit(font.render(shown, True, colour), (MARGIN, y))
            y += height
        self._shown = lines

    def _badge(self, frame, text: str, colour: tuple, corner: str, offset: int = 0) -> int:
        """A label with a dark backing at a corner of the scene; returns its width."""
        pg, side = self.pygame, self.layout.scene
        room = int(side * (0.62 if corner == "top-left" else 0.33)) - 12
        surface = self._text(fit_text(self.badge_font, text, room), colour, self.badge_font)
        w, h = surface.get_width() + 12, surface.get_height() + 6
        x = 6 + offset if corner.endswith("left") else side - w - 6 - offset
        y = 6 if corner.startswith("top") else side - h - 6 - (h + 4 if corner == "bottom-right" else 0)
        pg.draw.rect(frame, (0, 0, 0), (x, y, w, h))
        pg.draw.rect(frame, colour, (x, y, w, h), 1)
        frame.blit(surface, (x + 6, y + 3))
        return w + 6

    # ---- a frame -----------------------------------------------------------------------------
    def compose(self, frame, state: HudState, fps: float, arrows=()) -> None:
        """Draw ``state`` and the current ``scene`` (and ``inset``) pixels into ``frame``.

        arrows: (label, (dx, dy)) screen directions in the second view of the main view's keys.
        """
        pg, layout = self.pygame, self.layout
        side = layout.scene
        if self._scaled is not None:
            cv2.resize(self.scene, (side, side), dst=self._scaled, interpolation=cv2.INTER_LINEAR)
        frame.blit(self._scene_surface, (0, 0))
        offsets = {"top-left": 0, "top-right": 0, "bottom-right": 0}
        for corner, text, colour in badges(state):
            offsets[corner] += self._badge(frame, text, colour, corner, offsets[corner])
        line = prompt(state)
        if line is not None:
            surface = self._text(fit_text(self.badge_font, line[0], side - 16), line[1], self.badge_font)
            h = surface.get_height() + 8
            shade = pg.Surface((side, h), pg.SRCALPHA)
            shade.fill((0, 0, 0, 190))
            frame.blit(shade, (0, side - h))
            frame.blit(surface, (8, side - h + 4))
        self._update_status(hud_lines(state))
        frame.blit(self._panel, (side, 0))
        if self._inset_surface is not None:
            x, y = side + MARGIN, layout.inset_y
            frame.blit(self._inset_surface, (x, y))
            pg.draw.rect(frame, WHITE, (x - 1, y - 1, layout.inset + 2, layout.inset + 2), 1)
            self._draw_arrows(frame, x, y, arrows)
        fps_text = self.small.render(f"display {fps:4.1f} fps", True, GREY)
        frame.blit(fps_text, (side + MARGIN, layout.height - HELP_LINE - 2))

    def _draw_arrows(self, frame, x: int, y: int, arrows) -> None:
        """From the second view's centre, where each labelled key moves the gripper in that picture."""
        pg = self.pygame
        half = self.layout.inset / 2
        centre = np.array([x + half, y + half])
        for label, direction in arrows:
            d = np.asarray(direction, dtype=float)
            if not np.all(np.isfinite(d)) or np.linalg.norm(d) < 1e-6:
                continue
            d /= np.linalg.norm(d)
            tip = centre + d * half * 0.55
            pg.draw.line(frame, (255, 230, 0), centre, tip, 2)
            head = tip - d * 8
            normal = np.array([-d[1], d[0]]) * 5
            pg.draw.polygon(frame, (255, 230, 0), [tip, head + normal, head - normal])
            surface = self._text(label, (255, 230, 0), self.badge_font)
            at = centre + d * half * 0.75 - np.array(surface.get_size()) / 2
            frame.blit(surface, at)


DISPLAY_TRIES = 5  # an X server still starting (xvfb-run, a loaded machine) refuses the first connections
DISPLAY_RETRY_S = 0.5
XVFB_HINT = "or run it under Xvfb (xvfb-run teleop record ...); SDL_VIDEODRIVER=dummy runs it without a window"


def _linux_driver() -> Optional[str]:
    """The SDL video driver the window needs on Linux, from the environment; None lets SDL choose.

    With only DISPLAY set, SDL would otherwise probe Wayland (printing its complaints) and fall back to
    an invisible offscreen window when the X server cannot be reached, hiding why.
    """
    import sys

    if not sys.platform.startswith("linux") or os.environ.get("SDL_VIDEODRIVER") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    if not os.environ.get("DISPLAY"):
        raise ToolkitError(f"no display found (neither DISPLAY nor WAYLAND_DISPLAY is set): run it on a desktop "
                           f"session, {XVFB_HINT}")
    return "x11"


def _init_display(driver: Optional[str]) -> None:
    import time

    import pygame

    if driver is None:
        pygame.display.init()
        return
    os.environ["SDL_VIDEODRIVER"] = driver  # read by SDL at init only
    try:
        for attempt in range(DISPLAY_TRIES):
            try:
                pygame.display.init()
                return
            except pygame.error as error:
                if attempt == DISPLAY_TRIES - 1:
                    raise ToolkitError(f"cannot reach the X display DISPLAY={os.environ['DISPLAY']} ({error}): start "
                                       f"its X server or set DISPLAY to a running one, {XVFB_HINT}") from None
                time.sleep(DISPLAY_RETRY_S)
    finally:
        del os.environ["SDL_VIDEODRIVER"]


def _window_error(error) -> ToolkitError:
    return ToolkitError(f"cannot open the teleop window ({error}): run it on a desktop session, {XVFB_HINT}")


def open_window(layout: Layout, caption: str):
    """Open the live window (main thread), resizable; one-line errors where there is no display."""
    import pygame

    # Only what the window uses: pygame.init() would also open the sound card.
    try:
        _init_display(_linux_driver())
    except pygame.error as error:
        raise _window_error(error) from None
    driver = pygame.display.get_driver()
    if driver in ("offscreen", "dummy") and not os.environ.get("SDL_VIDEODRIVER"):
        # SDL fell back to an invisible window: the operator would see nothing.
        pygame.display.quit()
        raise ToolkitError(f"no display found (SDL fell back to its {driver} driver): run it on a desktop session, "
                           f"{XVFB_HINT}")
    pygame.font.init()
    pygame.joystick.init()
    try:
        screen = pygame.display.set_mode((layout.width, layout.height), pygame.RESIZABLE)
    except pygame.error as error:
        raise _window_error(error) from None
    pygame.display.set_caption(caption)
    return screen

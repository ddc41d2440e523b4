"""What the live window tells the operator, as pure functions of one tick's state.

The control loop publishes a :class:`Pose` copy and a :class:`HudState` each tick; the render
thread turns them into a picture (:mod:`teleop.live.painter`). Everything the operator reads is
decided here, without a window, so it is tested directly:

- :func:`badges`: short labels on the border of the scene (phase, SUCCESS / FAILED, speed). Never a
  banner across the middle: that is where the gripper and the object are.
- :func:`prompt`: one line along the bottom edge of the scene when there is something to decide
  (keep or retry, a failure that cannot be kept, a notice, a break reminder).
- :func:`hud_lines`: the side panel's status lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

WHITE, GREY, RED, GREEN, YELLOW, BLUE, ORANGE, MAGENTA = (
    (235, 235, 235), (150, 150, 150), (235, 60, 60), (70, 210, 90), (240, 200, 60), (110, 160, 255),
    (255, 150, 40), (255, 80, 230))
PHASE_COLORS = {"idle": WHITE, "recording": RED, "paused": YELLOW, "review": BLUE, "done": GREY}
GOAL_RGBA = (1.0, 0.2, 0.9, 0.8)  # the goal marker: magenta, a colour no MetaWorld object uses
GOAL_TEXT = "goal: the magenta ball"


@dataclass(frozen=True)
class Pose:
    """The part of the simulation the picture depends on, copied by the control thread after each change."""

    qpos: np.ndarray
    mocap_pos: np.ndarray
    mocap_quat: np.ndarray
    goal: np.ndarray  # where the task wants the object (MetaWorld's _target_pos), drawn as a marker


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
    max_steps: int = 500
    speed: float = 1.0  # fraction of real time
    success: bool = False
    end_reason: str = ""
    keepable: bool = True  # KEEP writes the episode under review (False: a failure, dropped)
    device_lost: bool = False
    settings: str = ""
    help_lines: tuple = field(default_factory=tuple)
    progress: tuple = field(default_factory=tuple)  # the episode source's lines (a session's block, counts)
    reminder: str = ""  # a break reminder, until the operator pauses
    notice: str = ""  # a one-off message (e.g. why an episode was not kept)
    practice: bool = False
    hand_to_object: Optional[float] = None  # metres
    object_used: bool = True  # False: the task ignores the object it places (reach's puck), no distance shown
    to_goal: Optional[float] = None  # metres, the task's own measure (MetaWorld's obj_to_target)
    grasped: bool = False
    view: str = ""  # the camera the keys follow
    keys: dict = field(default_factory=dict)  # action -> the control that does it ("keep" -> "K")
    driver: str = ""  # teleop correct: "policy" or "you" (who drives now); "" when recording demos
    driver_s: float = 0.0  # wall seconds the current driver has been driving
    takeovers: int = 0  # takeovers in this episode

    @property
    def failed(self) -> bool:
        return self.phase == "review" and not self.success


def key(state: HudState, action: str, fallback: str) -> str:
    return state.keys.get(action, fallback)


def phase_badge(state: HudState) -> tuple[str, tuple]:
    """The badge at the scene's top-left corner: where the episode stands."""
    if state.device_lost:
        return "DEVICE UNPLUGGED: plug it back in", ORANGE
    elapsed = state.steps / state.control_hz
    ready = (f"READY: {key(state, 'toggle_record', 'Enter')}: policy drives, or move"
             if state.driver else f"READY: move or {key(state, 'toggle_record', 'Enter')} to start")
    return {
        "idle": (ready, WHITE),
        "recording": (f"GO  {elapsed:4.1f} s", GREEN) if state.practice else (f"REC  {elapsed:4.1f} s", RED),
        "paused": (f"PAUSED  ({key(state, 'step', '.')}: one step, {key(state, 'pause', 'P')}: go on)", YELLOW),
        "review": ("REVIEW", BLUE),
        "done": ("DONE", GREY),
    }[state.phase]


def badges(state: HudState) -> list[tuple[str, str, tuple]]:
    """(corner, text, colour) for each label on the scene's border; corners: top-left, top-right, bottom-right."""
    shown = [("top-left", *phase_badge(state))]
    if state.success and state.phase in ("recording", "review", "paused"):
        shown.append(("top-right", "SUCCESS", GREEN))
    elif state.failed:
        shown.append(("top-right", f"FAILED: {state.end_reason}" if state.end_reason else "FAILED", RED))
    if state.practice:
        shown.append(("top-right", "PRACTICE", MAGENTA))
    if state.driver and state.phase in ("recording", "paused"):
        shown.append(("top-right", *driver_badge(state)))
    shown.append(("bottom-right", f"speed {state.speed:.2g}x", GREY))
    return shown


def driver_badge(state: HudState) -> tuple[str, tuple]:
    """teleop correct: who drives, and for how long the operator has."""
    if state.driver == "you":
        return f"YOU DRIVE  {state.driver_s:4.1f} s", ORANGE
    return "POLICY DRIVES", BLUE


def prompt(state: HudState) -> Optional[tuple[str, tuple]]:
    """The line along the scene's bottom edge, when there is something to decide or to know."""
    if state.notice:
        return state.notice, YELLOW
    if state.phase == "review":
        keep, retry, fresh = (key(state, "keep", "K"), key(state, "discard", "Backspace"), key(state, "reset", "N"))
        if state.practice:
            return f"{'done' if state.success else state.end_reason}: {keep} next spawn, {retry} again", BLUE
        if state.success:
            return f"{keep}/Enter: keep   {retry}: retry this spawn   {fresh}: new spawn", GREEN
        if state.keepable:
            return f"{keep}: keep anyway   {retry}: retry this spawn   {fresh}: new spawn", YELLOW
        return f"{retry}: retry this spawn   {fresh}: new spawn   (not kept without --keep-failures)", RED
    if state.reminder and state.phase in ("idle", "paused"):  # between episodes only: never over a recording
        return state.reminder, YELLOW
    return None


def _cm(metres: Optional[float]) -> str:
    return "-" if metres is None else f"{metres * 100:.1f} cm"


def hud_lines(state: HudState) -> list[tuple[str, tuple, bool]]:
    """(text, colour, large) for each status line of the side panel, top to bottom."""
    seconds = state.steps / state.control_hz
    lines = [
        (state.task, WHITE, True),
        ("practice: nothing is saved" if state.practice else f"episode {state.episode} of {state.episodes}",
         MAGENTA if state.practice else WHITE, False),
        *((text, BLUE, False) for text in state.progress if not (state.practice and text.startswith("PRACTICE"))),
        (f"step {state.steps} of {state.max_steps} ({seconds:.1f} s simulated)", WHITE, False),
        (f"speed {state.speed:.2g}x real time  "
         f"({key(state, 'slower', '[')}/{key(state, 'faster', ']')} to change)", WHITE, False),
        ((f"hand-object {_cm(state.hand_to_object)}   " if state.object_used else "")
         + f"to goal {_cm(state.to_goal)}" + ("   grasped" if state.grasped else ""), WHITE, False),
        (GOAL_TEXT, MAGENTA, False),
        (f"spawn seed {state.seed} (#{state.spawn_index})", GREY, False),
        (f"{state.device}: {state.device_status}", ORANGE if state.device_lost else GREY, False),
    ]
    if state.driver:
        lines.append((f"policy in the loop: {state.takeovers} takeover{'s' if state.takeovers != 1 else ''}",
                      BLUE, False))
        lines.append(("move to take over, let go to hand back", BLUE, False))
    if state.settings:
        lines.append((state.settings, GREY, False))
    if state.view:
        lines.append((f"keys move the arm in the main view ({state.view})", GREY, False))
    return lines


def help_lines_for(device) -> tuple[list[str], dict[str, str]]:
    """The device's help lines, and the control for each action the HUD names ("keep" -> "K").

    For a pad or SpaceMouse the window's keys still give keep / discard / pause / speed, so
    their lines follow the device's own.
    """
    from devices.actions import EVENT_ACTIONS
    from devices.keyboard import DEFAULT_KEY_BINDINGS, bindings_help, key_labels

    window_keys = {k: a for k, a in DEFAULT_KEY_BINDINGS.items() if a in EVENT_ACTIONS}
    if device.name == "keyboard":
        return list(device.bindings_help()), key_labels(device.bindings)
    lines = list(device.bindings_help()) if hasattr(device, "bindings_help") else []
    layout = getattr(device, "layout", None)
    if device.name == "spacemouse" and layout is not None:
        from devices.actions import ACTION_TEXT

        lines = ["push / pull / lift the cap: move on screen"]
        lines += [f"{button} button: {ACTION_TEXT[action]}" for button, action in layout.button_actions.items()]
    if device.frame != "world":
        lines += bindings_help(window_keys)
    return lines, key_labels(window_keys)

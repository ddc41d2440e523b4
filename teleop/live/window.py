"""The live teleoperation window: `teleop record --device keyboard|gamepad|spacemouse`.

Two threads, so that drawing never slows control:

* the main thread owns pygame and runs the 80 Hz control loop
  (:mod:`teleop.live.control_loop`) against absolute deadlines: it waits for each
  tick on SDL's event queue, drains the input at the tick, polls the device,
  steps and records, and shows the newest finished frame;
* the render thread (lower OS priority, :mod:`teleop.live.render`) turns the latest
  pose into a picture on its own ``MjData`` and draws the HUD
  (:mod:`teleop.live.hud`), at up to ``fps`` frames per second.

An earlier design had a third thread for the window, which handed events to a
control thread; its hand-over delay alone pushed the input latency's p99 past
one tick (BENCHMARKS.md has the numbers).

Episodes go through :class:`EpisodeBuffer`, like headless recording, so they
replay exactly. Where spawns come from and where kept episodes go is an
:class:`~teleop.live.episode_source.EpisodeSource`: a spawn stream and a
background writer for ``teleop record``, a batch session's tickets for
``teleop session run`` (:mod:`teleop.sessions.live`).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from devices.base import Device
from teleop.env import CONTROL_HZ, HOLD_STEPS, TaskEnv
from teleop.correction import HAND_BACK_S
from teleop.errors import ToolkitError
from teleop.live.control_loop import ControlLoop
from teleop.live.episode_source import EpisodeSource, PracticeSource, RecordSource
from teleop.live.hud import help_lines_for
from teleop.live.painter import Layout, open_window
from teleop.live.render import RenderThread
from teleop.live.timing import LoopStats, set_thread_nice
from teleop.mapping import LEAD_PER_UNIT, ActionMapper, ControlSettings, view_basis
from teleop.spawn import DEFAULT_STRATEGY

CONTROL_NICE = -10  # only where permitted (root / CAP_SYS_NICE); see set_thread_nice
_SWITCH_INTERVAL_S = 0.0005  # Python's default 5 ms GIL slice would delay a tick behind the render thread


@dataclass
class LiveConfig:
    """How the live window records. Field docs double as the CLI help."""

    task: str = "pick-place-v3"  # MetaWorld v3 task
    episodes: int = 10  # episodes to keep; the window closes after the last
    out: str = "recordings/live"  # output folder (appended to; spawns already in it are skipped)
    seed: int = 0  # base seed: spawn i gets seed SEED+i
    spawn: str = DEFAULT_STRATEGY  # spawn strategy (teleop.spawn.STRATEGIES)
    camera: str = "operator"  # the operator's view; motion is mapped into its frame
    second_camera: Optional[str] = None  # optional second view in the side panel (e.g. gripperPOV)
    view_size: int = 560  # scene side in pixels at start (the window can be resized)
    render_size: int = 400  # most pixels per side rendered; a larger scene is that picture scaled up
    fps: float = 40.0  # display frame-rate cap
    hold_s: float = HOLD_STEPS / CONTROL_HZ  # an episode ends this long after first success (simulated seconds)
    max_steps: int = 500  # step limit per episode
    speed: float = 1.0  # simulated seconds per wall-clock second (0.1-1.0); changed live with [ and ]
    practice: bool = False  # nothing is recorded and there is no step limit
    keep_failures: bool = False  # KEEP writes an episode that did not succeed (else it is dropped)
    lead_per_unit: float = LEAD_PER_UNIT  # how far the mocap target may lead the hand (teleop/mapping.py)
    stop_on_release: bool = True  # False: MetaWorld's plain action, the hand coasts on (for comparisons)
    operator: str = ""
    session: str = ""
    settings: ControlSettings = field(default_factory=ControlSettings)
    settings_text: str = ""  # shown on the HUD
    render_nice: int = 5  # OS nice value of the render thread, so control ticks preempt GL work
    boost_priority: bool = True  # raise the control and window threads' priority where the OS allows it
    pilot: object = None  # a teleop.correction.Pilot: the policy drives and the operator takes over (teleop correct)
    hand_back_s: float = HAND_BACK_S  # seconds without input before the policy drives again

    @property
    def hold_steps(self) -> int:
        return max(0, int(round(self.hold_s * CONTROL_HZ)))

    def check(self) -> "LiveConfig":
        """One-line errors for values no window can run with."""
        from teleop.env import check_max_steps
        from teleop.live.pace import SPEED_RANGE

        if self.episodes < 1:
            raise ToolkitError(f"--episodes must be at least 1, got {self.episodes}")
        low, high = SPEED_RANGE
        if not low <= self.speed <= high:
            raise ToolkitError(f"--speed {self.speed}: must be in [{low}, {high}] (a fraction of real time; "
                               f"0.5 runs the simulation at half speed)")
        check_max_steps(self.max_steps)
        return self


@dataclass
class LiveResult:
    written: list[Path]
    stats: LoopStats
    kept: int
    finished: bool = True  # every wanted episode kept (False: the operator quit first)


def run_live(device: Device, config: LiveConfig, *, stats: Optional[LoopStats] = None,
             help_lines: Optional[list[str]] = None, source: Optional[EpisodeSource] = None,
             on_start: Optional[Callable[[ControlLoop], None]] = None, spawns: Optional[list] = None) -> LiveResult:
    """Open the window and record until the episodes are kept, QUIT, or the window is closed.

    Must run on the main thread (SDL's event pump). Every kept episode is on
    disk when this returns or raises. ``source`` supplies spawns and takes
    episodes (default: a :class:`RecordSource` on ``config``'s folder, seed and
    spawn strategy). ``on_start(control)`` is called once the control loop
    exists (tests and the benchmark watch its flow).
    """
    import pygame

    from teleop.env import LONGEST_STEPS

    config.check()
    stats = stats or LoopStats()
    env = TaskEnv(config.task, max_steps=LONGEST_STEPS if config.practice else config.max_steps)
    try:
        env.check_camera(config.camera)
        if config.second_camera:
            env.check_camera(config.second_camera)
        if source is None and config.practice:
            source = PracticeSource(config.task, spawn=config.spawn, seed=config.seed, spawn_low=env.spawn_low,
                                    spawn_high=env.spawn_high)
        elif source is None:
            source = RecordSource(config.task, config.episodes, config.out, spawn=config.spawn, seed=config.seed,
                                  spawn_low=env.spawn_low, spawn_high=env.spawn_high,
                                  keep_failures=config.keep_failures, spawns=spawns)
    except BaseException:
        env.close()
        raise
    # One llvmpipe thread: on a 2-core machine a second GL worker thread mostly competes
    # with the control thread (and measured slower under load, not faster).
    os.environ.setdefault("LP_NUM_THREADS", "1")
    control = render = None
    old_switch = sys.getswitchinterval()
    window_device = hasattr(device, "handle_events")  # reads the window's events: connect after it opens
    try:
        if not window_device:
            device.connect()  # no window yet: "no SpaceMouse found" needs none
        lines, keys = help_lines_for(device)
        if help_lines is not None:
            lines = help_lines
        layout = Layout.default(config.view_size, inset=bool(config.second_camera), help_lines=len(lines))
        command = "correct" if config.pilot is not None else "record"
        open_window(layout, f"teleop {command}: {config.task} ({device.name})")
        if window_device:
            device.connect()
        mapper = ActionMapper(device.name, device.frame, None, config.settings, lead_per_unit=config.lead_per_unit)
        control = ControlLoop(env, device, mapper, config, source, stats, lines, keys)
        control.reset("new")  # before the view basis: the camera pose needs a forward pass
        basis = view_basis(env, config.camera)
        mapper.basis = basis if device.frame != "world" else np.eye(3)
        if control.window_keys is not None:
            control.window_keys.connect()
        arrow_labels = (keys.get("+x", "right"), keys.get("+y", "up"))
        render = RenderThread(env, control, config, stats, layout=layout, help_lines=tuple(lines), basis=basis,
                              arrow_labels=arrow_labels)
        render.start()
        render.ready.wait()
        if render.error is not None:
            raise ToolkitError(f"cannot render the scene: {render.error}")
        if on_start is not None:
            on_start(control)

        def present() -> None:  # after each tick's work: the newest finished frame, if any
            if render.error is not None:
                raise ToolkitError(f"rendering failed: {render.error}")
            if render.present(pygame.display.get_surface()):  # a new Surface after a resize
                pygame.display.flip()
                stats.frame_times.append(time.perf_counter())

        if config.boost_priority:
            set_thread_nice(CONTROL_NICE)  # after the render thread started: it must not inherit this
        sys.setswitchinterval(_SWITCH_INTERVAL_S)
        control.run(present)
    finally:
        sys.setswitchinterval(old_switch)
        if config.boost_priority:
            set_thread_nice(0)
        if render is not None:
            render.stopping.set()
            render.join()
        try:
            source.close()  # every kept episode reaches the disk, whatever happened above
        finally:
            device.close()
            env.close()
            pygame.display.quit()
    flow = control.flow
    return LiveResult(source.written, stats, flow.kept, finished=flow.kept >= flow.episodes)

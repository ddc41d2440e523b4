"""The live teleoperation window: `teleop record --device keyboard|gamepad|spacemouse`.

Three threads, so that drawing never slows control:

* the main thread owns pygame: it waits on the event queue (SDL wakes it as
  soon as a key or pad event arrives), passes input events to the control
  thread with their arrival time, and shows each frame the render thread
  finishes;
* the control thread ticks at the environment's 80 Hz against absolute
  deadlines (:class:`~teleop.timing.DeadlineScheduler`). It takes the input
  that arrived up to the tick, polls the device, runs the episode flow
  (:mod:`teleop.flow`), steps and records, and publishes a copy of the pose;
* the render thread (lower OS priority) turns the latest pose into a picture
  on its own ``MjData`` and draws the HUD (:mod:`teleop.hud`), at up to
  ``fps`` frames per second.

Devices are used from the control thread only (the drivers are not
thread-safe); they read the events the main thread drained, as their
docstrings describe. Episodes go through :class:`EpisodeBuffer`, like headless
recording, so they replay exactly. Where spawns come from and where kept
episodes go is an :class:`~teleop.episode_source.EpisodeSource`: a spawn stream
and a background writer for ``teleop record``, a batch session's tickets for
``teleop session run`` (:func:`run_session`, which opens one window per task block).
"""

from __future__ import annotations

import collections
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from devices.base import Device, Event
from teleop.collect import spawn_attrs
from teleop.env import CONTROL_HZ, TaskEnv
from teleop.episode_source import EpisodeSource, RecordSource
from teleop.errors import ToolkitError
from teleop.flow import Decision, EpisodeFlow, Phase
from teleop.hud import HudState, Pose, RenderThread, help_lines_for, open_window, set_thread_nice
from teleop.mapping import ActionMapper, ControlSettings, view_basis
from teleop.recorder import EpisodeBuffer
from teleop.timing import DeadlineScheduler, LoopStats

# Device motion below this (fraction of full scale) does not count as "the operator started".
START_THRESHOLD = 0.05
CONTROL_NICE, WINDOW_NICE = -10, -5  # only where permitted (root / CAP_SYS_NICE); see set_thread_nice
_SWITCH_INTERVAL_S = 0.0005  # Python's default 5 ms GIL slice would delay a tick behind the render thread


@dataclass
class LiveConfig:
    """How the live window records. Field docs double as the CLI help."""

    task: str = "pick-place-v3"  # MetaWorld v3 task
    episodes: int = 10  # episodes to keep; the window closes after the last
    out: str = "recordings/live"  # output folder (appended to; spawns already in it are skipped)
    seed: int = 0  # base seed: spawn i gets seed SEED+i
    spawn: str = "stratified"  # spawn strategy (teleop.spawn.STRATEGIES)
    camera: str = "corner"  # the operator's view; motion is mapped into its frame
    second_camera: Optional[str] = None  # optional picture-in-picture view
    view_size: int = 480  # scene image side in pixels
    fps: float = 40.0  # display frame-rate cap
    hold_s: float = 0.5  # an episode ends this long after first success
    max_steps: int = 500  # step limit per episode
    operator: str = ""
    session: str = ""
    settings: ControlSettings = field(default_factory=ControlSettings)
    settings_text: str = ""  # shown on the HUD
    render_nice: int = 5  # OS nice value of the render thread, so control ticks preempt GL work
    boost_priority: bool = True  # raise the control and window threads' priority where the OS allows it

    @property
    def hold_steps(self) -> int:
        return max(0, int(round(self.hold_s * CONTROL_HZ)))


@dataclass
class LiveResult:
    written: list[Path]
    stats: LoopStats
    kept: int
    finished: bool = True  # every wanted episode kept (False: the operator quit first)


def _window_keys(device: Device):
    """For a pad or SpaceMouse: the window's keys still give the session events (keep, discard, ...)."""
    from devices.actions import EVENT_ACTIONS
    from devices.keyboard import DEFAULT_KEY_BINDINGS, KeyboardDevice

    if device.name == "keyboard" or not hasattr(device, "frame") or device.frame == "world":
        return None
    return KeyboardDevice({k: a for k, a in DEFAULT_KEY_BINDINGS.items() if a in EVENT_ACTIONS})


class ControlLoop(threading.Thread):
    """Ticks the environment at 80 Hz, runs the episode flow, records; see the module docstring."""

    def __init__(self, env: TaskEnv, device: Device, mapper: ActionMapper, config: LiveConfig,
                 source: EpisodeSource, stats: LoopStats, help_lines: list[str]):
        super().__init__(name="teleop-control", daemon=True)
        import pygame

        self.pygame = pygame
        self.env, self.device, self.mapper, self.config = env, device, mapper, config
        self.source, self.stats = source, stats
        self.help_lines = tuple(help_lines)
        self.flow = EpisodeFlow(source.episodes, hold_steps=config.hold_steps, auto=device.frame == "world",
                                keep_failures=source.keep_failures)
        self.buffer = EpisodeBuffer(env)
        self.window_keys = _window_keys(device)
        self.inbox: collections.deque = collections.deque()  # (arrival time, [pygame events]) from the main thread
        self.stopping = threading.Event()
        self.error: Optional[BaseException] = None
        self.pose: Optional[Pose] = None  # replaced whole (never mutated), so readers need no lock
        self.hud: Optional[HudState] = None
        self.request = None
        self.attrs: dict = {}
        self.obs: Optional[np.ndarray] = None
        self._input_types = {pygame.KEYDOWN, pygame.KEYUP, pygame.JOYAXISMOTION, pygame.JOYBUTTONDOWN,
                             pygame.JOYBUTTONUP, pygame.JOYHATMOTION, pygame.CONTROLLERAXISMOTION,
                             pygame.CONTROLLERBUTTONDOWN, pygame.CONTROLLERBUTTONUP}

    # ------------------------------------------------------------------ spawns
    def reset(self, kind: str) -> bool:
        """kind "new": the source's next spawn; "same": this spawn again. False: the source has no more."""
        request = self.source.next_spawn(kind)
        if request is None:
            return False
        self.request = request
        self.obs = self.env.reset(self.request)
        self.attrs = spawn_attrs(self.env, self.request, self.obs)
        self.device.reset()
        self.mapper.reset()
        self.buffer.clear()
        self._publish_pose()
        return True

    def _publish_pose(self) -> None:
        data = self.env.data
        self.pose = Pose(data.qpos.copy(), data.mocap_pos.copy(), data.mocap_quat.copy())

    def _keep(self) -> None:
        ended = self.flow.ended
        episode = self.buffer.to_episode(
            spawn_attrs=self.attrs, success=ended.success, device=self.device.name,
            operator=self.config.operator, session=self.config.session,
            extra_attrs={"first_success_step": ended.first_success_step or -1, "hostname": socket.gethostname(),
                         "end_reason": ended.reason, "marked_success": ended.marked_success,
                         "view_camera": self.config.camera})
        self.source.keep(episode)

    # ------------------------------------------------------------------ ticks
    def run(self) -> None:
        try:
            self._run()
        except BaseException as error:  # noqa: BLE001 - handed to the main thread, which raises it
            self.error = error
        finally:
            self.stopping.set()
            try:
                self.pygame.event.post(self.pygame.event.Event(self.pygame.USEREVENT, wake=True))
            except self.pygame.error:
                pass

    def _run(self) -> None:
        if self.config.boost_priority:
            set_thread_nice(CONTROL_NICE)
        clock = time.perf_counter
        scheduler = DeadlineScheduler(1.0 / CONTROL_HZ)
        stats = self.stats
        while not self.stopping.is_set():
            deadline, woke = scheduler.wait()
            stats.tick_jitter.append(woke - deadline)
            stats.tick_times.append(woke)
            inputs = []
            while self.inbox:  # everything that arrived up to this tick
                inputs.append(self.inbox.popleft())
            decision, command = self._decide([e for _, batch in inputs for e in batch])
            if decision.keep:
                self._keep()
            elif decision.dropped:
                self.source.drop(decision.dropped, self.buffer.t)  # before the reset clears the buffer
            if decision.reset:
                if not self.reset(decision.reset):  # nothing left to record in this window
                    self.flow.phase = Phase.DONE
                    decision = Decision(quit=True)
                scheduler.rebase()  # a reset takes ~20 ms; not a missed tick of an episode
            elif decision.step:
                action = self.mapper(command)
                applied = clock()
                self._note_latency(inputs, applied)
                self.buffer.before_step(self.obs)
                self.obs, reward, success, truncated, _ = self.env.step(action)
                self.buffer.after_step(action, reward, success)
                self.flow.stepped(success, truncated)
                self._publish_pose()
                stats.step_durations.append(clock() - woke)
            stats.missed_ticks = scheduler.missed
            self._publish_hud()
            if decision.quit:
                return

    def _decide(self, events) -> tuple[Decision, object]:
        extra = set()
        if any(e.type == self.pygame.QUIT for e in events):  # the window's close button
            extra.add(Event.QUIT)
        if hasattr(self.device, "handle_events"):
            self.device.handle_events(events)
        if self.window_keys is not None:
            self.window_keys.handle_events(events)
            extra |= self.window_keys.poll().events
        self.device.observe(self.obs)
        command = self.device.poll()
        if Event.PAUSE in command.events | extra and self.source.reminder:
            self.source.take_break()  # pausing while the break reminder shows acknowledges it
        moved = max(abs(v) for v in command.translation) > START_THRESHOLD or (
            command.gripper is not None and command.gripper != self.mapper.gripper)
        present = not self.device.status.startswith("unplugged")
        return self.flow.decide(command.events | extra, moved=moved, device_present=present), command

    def _note_latency(self, inputs, applied: float) -> None:
        for arrival, batch in inputs:
            for event in batch:
                if event.type in self._input_types:
                    # Injected events (benchmark) carry the time they were posted: that counts
                    # the window thread's pick-up delay too.
                    posted = getattr(event, "injected_at", None)
                    if posted is not None:
                        self.stats.pickup_delay.append(arrival - posted)
                    self.stats.input_latency.append(applied - (posted if posted is not None else arrival))

    def _publish_hud(self) -> None:
        flow, request = self.flow, self.request
        kept, wanted, progress = self.source.hud(flow.kept)
        self.hud = HudState(
            task=self.env.task, episode=min(kept + 1, wanted), episodes=wanted,
            phase=flow.phase.value, steps=flow.steps, control_hz=CONTROL_HZ, device=self.device.name,
            device_status=self.device.status, seed=request.seed, spawn_index=request.index,
            success=flow.first_success is not None and flow.phase in (Phase.RECORDING, Phase.REVIEW, Phase.PAUSED),
            end_reason=flow.ended.reason if flow.ended and flow.phase == Phase.REVIEW else "",
            device_lost=flow.device_lost, settings=self.config.settings_text, help_lines=self.help_lines,
            progress=progress, reminder=self.source.reminder)


def run_live(device: Device, config: LiveConfig, *, stats: Optional[LoopStats] = None,
             help_lines: Optional[list[str]] = None, source: Optional[EpisodeSource] = None,
             on_start: Optional[Callable[[ControlLoop], None]] = None) -> LiveResult:
    """Open the window and record until the episodes are kept, QUIT, or the window is closed.

    Must run on the main thread (SDL's event pump). Every kept episode is on
    disk when this returns or raises. ``source`` supplies spawns and takes
    episodes (default: a :class:`RecordSource` on ``config``'s folder, seed and
    spawn strategy). ``on_start(control)`` is called once the control loop
    exists (tests and the benchmark watch its flow).
    """
    import pygame

    if config.episodes < 1:
        raise ToolkitError(f"--episodes must be at least 1, got {config.episodes}")
    stats = stats or LoopStats()
    env = TaskEnv(config.task, max_steps=config.max_steps)
    try:
        env.check_camera(config.camera)
        if config.second_camera:
            env.check_camera(config.second_camera)
        if source is None:
            source = RecordSource(config.task, config.episodes, config.out, spawn=config.spawn, seed=config.seed,
                                  spawn_low=env.spawn_low, spawn_high=env.spawn_high)
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
        screen = open_window(config, device.name)
        if window_device:
            device.connect()
        lines = help_lines if help_lines is not None else help_lines_for(device)
        mapper = ActionMapper(device.name, device.frame, None, config.settings)
        control = ControlLoop(env, device, mapper, config, source, stats, lines)
        control.reset("new")  # before the view basis: the camera pose needs a forward pass
        mapper.basis = view_basis(env, config.camera) if device.frame != "world" else np.eye(3)
        if control.window_keys is not None:
            control.window_keys.connect()
        frame_event = pygame.event.custom_type()
        render = RenderThread(env, control, config, stats, frame_event)
        render.start()
        render.ready.wait()
        if render.error is not None:
            raise ToolkitError(f"cannot render the scene: {render.error}")
        if on_start is not None:
            on_start(control)
        if config.boost_priority:
            set_thread_nice(WINDOW_NICE)  # input pick-up is on this thread
        sys.setswitchinterval(_SWITCH_INTERVAL_S)
        control.start()
        while control.is_alive():
            first = pygame.event.wait(50)  # SDL wakes this the moment input arrives
            events = ([first] if first.type != pygame.NOEVENT else []) + pygame.event.get()
            arrival = time.perf_counter()
            forward = [e for e in events if e.type not in (frame_event, pygame.USEREVENT)]
            if forward:
                control.inbox.append((arrival, forward))  # deque.append is atomic: no lock
            if any(e.type == frame_event for e in events) and render.frame is not None:
                screen.blit(render.frame, (0, 0))
                pygame.display.flip()
                stats.frame_times.append(time.perf_counter())
            if render.error is not None:
                raise ToolkitError(f"rendering failed: {render.error}")
    finally:
        sys.setswitchinterval(old_switch)
        if config.boost_priority:
            set_thread_nice(0)
        if control is not None and control.is_alive():
            control.stopping.set()
            control.join()
        if render is not None:
            render.stopping.set()
            render.join()
        try:
            source.close()  # every kept episode reaches the disk, whatever happened above
        finally:
            device.close()
            env.close()
            pygame.display.quit()
    if control.error is not None:
        raise control.error
    flow = control.flow
    return LiveResult(source.written, stats, flow.kept, finished=flow.kept >= flow.episodes)


def run_session(session, device: str, *, on_start: Optional[Callable[[ControlLoop], None]] = None,
                **config) -> LiveResult:
    """``teleop session run`` with a human device: the live window, fed by ``session``.

    One window per task block still short of episodes (the scene is built for
    one task), until the plan is done or the operator quits; a quit leaves the
    session resumable (see :mod:`teleop.episode_source` for what a discard,
    a fresh spawn and a quit do to the pool). ``config``: further
    :class:`LiveConfig` fields (camera, view_size, fps, ...). Returns the last
    window's result, with every episode written in this run.
    """
    from devices.registry import make_device
    from teleop.device_settings import describe, resolve
    from teleop.episode_source import SessionSource

    if device == "gamepad":
        from devices.gamepad import allow_background_events

        allow_background_events()  # before SDL starts, or pad input without window focus is dropped
    settings, _ = resolve(device, save=False)  # the operator's saved sensitivity / inversion
    plan, written, result = session.plan, [], None
    while not session.done:
        source = SessionSource(session)
        live = LiveConfig(task=source.task, episodes=source.episodes, max_steps=plan.max_steps,
                          hold_s=plan.hold_steps / CONTROL_HZ, operator=session.operator,
                          session=session.session_id, settings=settings, settings_text=describe(settings),
                          **config)
        result = run_live(make_device(device), live, source=source, on_start=on_start)
        written += result.written
        if not result.finished:
            break  # the operator quit: the session stays resumable
    if result is None:  # nothing was left to record
        return LiveResult([], LoopStats(), 0, finished=True)
    return LiveResult(written, result.stats, len(written), finished=session.done)

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
docstrings describe. Episodes go through :class:`EpisodeBuffer` and
:class:`BackgroundWriter`, like headless recording, so they replay exactly.
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
from teleop.collect import existing_output, prepare_output, spawn_attrs
from teleop.env import CONTROL_HZ, TaskEnv
from teleop.errors import ToolkitError
from teleop.flow import Decision, EpisodeFlow, Phase
from teleop.hud import HudState, Pose, set_thread_nice
from teleop.mapping import ActionMapper, ControlSettings, view_basis
from teleop.recorder import BackgroundWriter, EpisodeBuffer
from teleop.spawn import SpawnStream
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
                 writer: BackgroundWriter, used_seeds: set[int], stats: LoopStats, help_lines: list[str]):
        super().__init__(name="teleop-control", daemon=True)
        import pygame

        self.pygame = pygame
        self.env, self.device, self.mapper, self.config = env, device, mapper, config
        self.writer, self.used_seeds, self.stats = writer, used_seeds, stats
        self.help_lines = tuple(help_lines)
        self.flow = EpisodeFlow(config.episodes, hold_steps=config.hold_steps, auto=device.frame == "world")
        self.stream = SpawnStream(env.spawn_low, env.spawn_high, strategy=config.spawn, base_seed=config.seed)
        self.buffer = EpisodeBuffer(env)
        self.window_keys = _window_keys(device)
        self.inbox: collections.deque = collections.deque()  # (arrival time, [pygame events]) from the main thread
        self.stopping = threading.Event()
        self.error: Optional[BaseException] = None
        self.pose: Optional[Pose] = None  # replaced whole (never mutated), so readers need no lock
        self.hud: Optional[HudState] = None
        self._index = -1
        self.request = None
        self.attrs: dict = {}
        self.obs: Optional[np.ndarray] = None
        self._input_types = {pygame.KEYDOWN, pygame.KEYUP, pygame.JOYAXISMOTION, pygame.JOYBUTTONDOWN,
                             pygame.JOYBUTTONUP, pygame.JOYHATMOTION, pygame.CONTROLLERAXISMOTION,
                             pygame.CONTROLLERBUTTONDOWN, pygame.CONTROLLERBUTTONUP}

    # ------------------------------------------------------------------ spawns
    def reset(self, kind: str) -> None:
        """kind "new": the next spawn not already in the folder; "same": this spawn again."""
        if kind == "new" or self.request is None:
            self._index += 1
            while self.stream[self._index].seed in self.used_seeds:
                self._index += 1
            self.request = self.stream[self._index]
        self.obs = self.env.reset(self.request)
        self.attrs = spawn_attrs(self.env, self.request, self.obs)
        self.device.reset()
        self.mapper.reset()
        self.buffer.clear()
        self._publish_pose()

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
        self.writer.submit(episode)
        self.used_seeds.add(self.request.seed)

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
            if decision.reset:
                self.reset(decision.reset)
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
        self.hud = HudState(
            task=self.env.task, episode=min(flow.kept + 1, flow.episodes), episodes=flow.episodes,
            phase=flow.phase.value, steps=flow.steps, control_hz=CONTROL_HZ, device=self.device.name,
            device_status=self.device.status, seed=request.seed, spawn_index=request.index,
            success=flow.first_success is not None and flow.phase in (Phase.RECORDING, Phase.REVIEW, Phase.PAUSED),
            end_reason=flow.ended.reason if flow.ended and flow.phase == Phase.REVIEW else "",
            device_lost=flow.device_lost, settings=self.config.settings_text, help_lines=self.help_lines)


class RenderThread(threading.Thread):
    """Draws the latest pose and HUD at up to ``fps``; hands finished frames to the main thread."""

    def __init__(self, env: TaskEnv, control: ControlLoop, config: LiveConfig, stats: LoopStats, frame_event: int):
        super().__init__(name="teleop-render", daemon=True)
        self.env, self.control, self.config, self.stats = env, control, config, stats
        self.frame_event = frame_event
        self.frame = None  # the newest composed pygame Surface
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        import pygame

        from teleop.hud import HudPainter, SceneView

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


def run_live(device: Device, config: LiveConfig, *, stats: Optional[LoopStats] = None,
             help_lines: Optional[list[str]] = None,
             on_start: Optional[Callable[[ControlLoop], None]] = None) -> LiveResult:
    """Open the window and record until the episodes are kept, QUIT, or the window is closed.

    Must run on the main thread (SDL's event pump). Every kept episode is on
    disk when this returns or raises. ``on_start(control)`` is called once the
    control loop exists (tests and the benchmark watch its flow).
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
        out = prepare_output(config.out, config.task)
    except BaseException:
        env.close()
        raise
    start_index, used_seeds = existing_output(out)
    # One llvmpipe thread: on a 2-core machine a second GL worker thread mostly competes
    # with the control thread (and measured slower under load, not faster).
    os.environ.setdefault("LP_NUM_THREADS", "1")
    writer = control = render = None
    old_switch = sys.getswitchinterval()
    window_device = hasattr(device, "handle_events")  # reads the window's events: connect after it opens
    try:
        if not window_device:
            device.connect()  # no window yet: "no SpaceMouse found" needs none
        screen = _open_window(config, device.name)
        if window_device:
            device.connect()
        lines = help_lines if help_lines is not None else _help_lines(device)
        writer = BackgroundWriter(out, start_index)
        mapper = ActionMapper(device.name, device.frame, None, config.settings)
        control = ControlLoop(env, device, mapper, config, writer, used_seeds, stats, lines)
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
            if writer is not None:
                writer.close()  # every kept episode reaches the disk, whatever happened above
        finally:
            device.close()
            env.close()
            pygame.display.quit()
    if control.error is not None:
        raise control.error
    return LiveResult(writer.written, stats, control.flow.kept)


def _open_window(config: LiveConfig, device_name: str):
    import pygame

    from teleop.hud import PANEL_WIDTH

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


def _help_lines(device: Device) -> list[str]:
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

"""The live window's 80 Hz control loop; it runs on the main thread, which owns SDL's event queue.

Why the main thread. An input that arrives just after a tick waits up to one
period (12.5 ms) for the next tick whatever we do, so any extra hand-over
delay puts the latency's tail above one period: with a separate window thread
passing events on, the measured p99 was 15 ms. Here the loop waits for its
next deadline *on SDL's event queue* (SDL wakes it when input arrives, so each
event is stamped with its real arrival time) and drains the queue at the start
of every tick, just before polling the device: nothing stands between an event
and the tick that applies it.

Input is sampled once more at the last moment. Between the drain and
``env.step`` the tick does ~0.15-0.3 ms of work (device, flow, mapping); an
event that lands in that window would otherwise wait a whole extra period.
So, just before stepping, the loop looks at SDL's queue again and, if input came in,
hands it to the device and polls it again: the action applied is the newest
the operator gave. Session keys and discrete device events found this way are
carried to the next tick's flow decision (the flow already decided this tick).
The latency then is the wait for the sampling instant (uniform over one period)
plus a few microseconds, not plus the tick's own work.

Each tick: drain input, poll the device, run the episode flow
(:mod:`teleop.live.flow`), step and record, publish a copy of the pose and the HUD
state for the render thread (:mod:`teleop.live.render`), then show the newest
finished frame (``present``, a blit and a flip: cheap, and done after the
tick's work so it never delays the tick itself).

Speed. The simulation keeps MetaWorld's 80 Hz control step (the data stay
MetaWorld's), but the loop can run it slower than real time: at ``speed`` 0.5
a tick comes every 25 ms of wall time. The operator changes it live (SLOWER /
FASTER); each episode stores the speed it started at.

Devices are used from this thread only (the drivers are not thread-safe); they
read the events drained here, as their docstrings describe.
"""

from __future__ import annotations

import socket
import time
from typing import Callable, Optional

import numpy as np

from devices.base import Device, Event
from teleop.collect import spawn_attrs
from teleop.correction import Takeover
from teleop.env import CONTROL_HZ, TaskEnv
from teleop.live.episode_source import EpisodeSource
from teleop.live.flow import Decision, EpisodeFlow, Phase
from teleop.live.hud import HudState, Pose
from teleop.live.pace import SPEED_RANGE, next_speed
from teleop.live.timing import DeadlineScheduler, LoopStats
from teleop.mapping import ActionMapper
from teleop.recorder import EpisodeBuffer
from teleop.spawn_dims import object_used

# Device motion below this (fraction of full scale) does not count as "the operator started".
START_THRESHOLD = 0.05
NOTICE_S = 4.0  # how long a one-off notice stays on the HUD


class PracticeBuffer:
    """Counts the steps of a practice attempt and stores nothing (practice has no step limit)."""

    def __init__(self):
        self.t = 0

    def clear(self) -> None:
        self.t = 0

    def before_step(self, obs) -> None:
        pass

    def after_step(self, action, reward, success, **corrections) -> None:
        self.t += 1


def _window_keys(device: Device):
    """For a pad or SpaceMouse: the window's keys still give the session events (keep, discard, ...)."""
    from devices.actions import EVENT_ACTIONS
    from devices.keyboard import DEFAULT_KEY_BINDINGS, KeyboardDevice

    if device.name == "keyboard" or not hasattr(device, "frame") or device.frame == "world":
        return None
    return KeyboardDevice({k: a for k, a in DEFAULT_KEY_BINDINGS.items() if a in EVENT_ACTIONS})


class ControlLoop:
    """Ticks the environment at 80 Hz, runs the episode flow, records; see the module docstring."""

    def __init__(self, env: TaskEnv, device: Device, mapper: ActionMapper, config, source: EpisodeSource,
                 stats: LoopStats, help_lines: list[str], keys: Optional[dict] = None):
        import pygame

        self.pygame = pygame
        self.env, self.device, self.mapper, self.config = env, device, mapper, config
        self.source, self.stats = source, stats
        self.help_lines = tuple(help_lines)
        self.object_used = object_used(env.task)  # reach's puck: no hand-object distance on the HUD
        self.keys = dict(keys or {})  # action -> the control the HUD names for it
        self.window_size: Optional[tuple[int, int]] = None  # set when the operator resizes the window
        self.flow = EpisodeFlow(source.episodes, hold_steps=config.hold_steps, auto=device.frame == "world",
                                keep_failures=source.keep_failures)
        self.buffer = PracticeBuffer() if source.practice else EpisodeBuffer(env)
        # teleop correct: the policy drives until the operator takes over (teleop/correction.py).
        self.pilot = getattr(config, "pilot", None)
        self.takeover = (Takeover(world_frame=device.frame == "world", hand_back_s=config.hand_back_s)
                         if self.pilot is not None else None)
        self.speed = float(config.speed)
        self.scheduler: Optional[DeadlineScheduler] = None
        self._steps_wanted = 0  # STEP presses not yet run (one paused step per tick)
        self._episode_speed = self.speed  # the speed the episode in progress started at
        self._recording_since: Optional[float] = None  # wall time of the episode's first step
        # MetaWorld's info of the last step, or at a reset the spawn's, measured without a step (the HUD's)
        self.info: dict = {}
        self.notice, self._notice_until = "", 0.0
        self.window_keys = _window_keys(device)
        self.pending: list = []  # (arrival time, [pygame events]) taken off SDL's queue since the last tick
        # Late input (see the module docstring): its window events and device events, for the next tick's flow.
        self._late_window_events: list = []
        self._late_device_events: frozenset = frozenset()
        self._reads_window = hasattr(device, "handle_events")  # keyboard/gamepad: fed the drained events
        self.pose: Optional[Pose] = None  # replaced whole (never mutated), so the render thread needs no lock
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
        if self.pilot is not None:
            self.pilot.reset()
            self.takeover.reset()
        self.buffer.clear()
        self.info = self.env.measure(self.obs)
        self._recording_since = None
        self._steps_wanted = 0
        self._publish_pose()
        return True

    def _publish_pose(self) -> None:
        data = self.env.data
        self.pose = Pose(data.qpos.copy(), data.mocap_pos.copy(), data.mocap_quat.copy(), self.obs[36:39].copy())

    def set_speed(self, speed: float) -> None:
        """Run the simulation at ``speed`` x real time from the next tick on."""
        self.speed = float(np.clip(speed, *SPEED_RANGE))
        if self.scheduler is not None:
            self.scheduler.set_period(1.0 / (CONTROL_HZ * self.speed))

    def say(self, text: str) -> None:
        """A one-off notice on the HUD, for a few seconds."""
        self.notice, self._notice_until = text, time.perf_counter() + NOTICE_S

    def _keep(self) -> None:
        if self.source.practice:  # nothing is recorded: "keep" just moves on
            return
        ended = self.flow.ended
        episode = self.buffer.to_episode(
            spawn_attrs=self.attrs, success=ended.success, device=self.device.name,
            operator=self.config.operator, session=self.config.session,
            extra_attrs={"first_success_step": ended.first_success_step or -1, "hostname": socket.gethostname(),
                         "end_reason": ended.reason, "marked_success": ended.marked_success,
                         "view_camera": self.config.camera, "speed": self._episode_speed,
                         "max_steps": self.env.max_steps, "wall_s": self._wall_s(),
                         "lead_per_unit": self.mapper.lead_per_unit
                         if self.device.frame != "world" and self.config.stop_on_release else 0.0,
                         **self._correction_attrs()})
        self.source.keep(episode)

    def _correction_attrs(self) -> dict:
        if self.pilot is None:
            return {}
        return {"mode": "correct", "policy": self.pilot.description, "hand_back_s": self.config.hand_back_s,
                "takeovers": self.takeover.stats.takeovers}

    def _arm(self):
        """What the mapper needs to stop the hand where the operator lets go (None: plain actions)."""
        return self.env.arm_state() if self.config.stop_on_release else None

    def _wall_s(self) -> float:
        return 0.0 if self._recording_since is None else time.perf_counter() - self._recording_since

    # ------------------------------------------------------------------ waiting
    def wait_for_input(self, seconds: float) -> None:
        """The scheduler's sleep: wait on SDL's queue, stamping events as they arrive.

        ``pygame.event.wait`` releases the GIL and returns as soon as an event
        is queued (about 0.6 ms after another thread posts one, on X11 and on
        the dummy driver alike), so the render thread runs meanwhile and the
        arrival stamps are true. The timeout is in whole milliseconds, rounded
        down: the scheduler's final spin covers the rest.
        """
        pg = self.pygame
        if seconds <= 0:
            time.sleep(0)  # the scheduler's spin: yield the GIL to the render thread
            return
        end = time.perf_counter() + seconds
        while True:
            ms = int((end - time.perf_counter()) * 1000)
            if ms < 1:
                break
            first = pg.event.wait(ms)
            if first.type != pg.NOEVENT:
                self.pending.append((time.perf_counter(), [first, *pg.event.get()]))

    def _drain(self) -> list:
        inputs, self.pending = self.pending, []
        events = self.pygame.event.get()  # whatever came in during the spin, up to this very moment
        if events:
            inputs.append((time.perf_counter(), events))
        return inputs

    # ------------------------------------------------------------------ ticks
    def run(self, present: Callable[[], None] = lambda: None) -> None:
        """Tick until the flow says quit (episodes done, QUIT, the window closed); exceptions propagate."""
        clock = time.perf_counter
        scheduler = self.scheduler = DeadlineScheduler(1.0 / (CONTROL_HZ * self.speed), sleep=self.wait_for_input)
        stats = self.stats
        while True:
            deadline, woke = scheduler.wait()
            stats.tick_jitter.append(woke - deadline)
            stats.tick_times.append(woke)
            inputs = self._drain()
            decision, command = self._decide([e for _, batch in inputs for e in batch])
            if decision.keep:
                self._keep()
            elif decision.dropped:
                self.source.drop(decision.dropped, self.buffer.t)  # before the reset clears the buffer
                if decision.dropped == "failed" and not self.flow.auto and not self.source.practice:
                    self.say("not kept: the episode failed (failures are kept only with --keep-failures)")
            if decision.reset:
                if not self.reset(decision.reset):  # nothing left to record in this window
                    self.flow.phase = Phase.DONE
                    decision = Decision(quit=True)
                scheduler.rebase()  # a reset takes ~20 ms; not a missed tick of an episode
            elif decision.step:
                if decision.start:
                    self._episode_speed, self._recording_since = self.speed, clock()
                corrections = {}
                if self.pilot is not None:
                    policy_action = self.pilot.act(self.obs, self.env.robot_qpos())
                    if not self.takeover.person:
                        self.mapper.stop.reset()  # a takeover starts holding where the arm is now
                action = self.mapper(command, self._arm())
                if self._reads_window:
                    # get(), not peek(): pygame 2.6's peek() frees the attribute dict of a
                    # posted event that get() hands out later (a use-after-free: seen as segfaults).
                    late = self.pygame.event.get()
                    if late:
                        action, command = self._sample_late(inputs, late)
                if self.pilot is not None:
                    action, person = self.takeover.step(command, action, policy_action, clock())
                    corrections = {"intervention": person, "policy_action": policy_action}
                applied = clock()
                stats.apply_delay.append(applied - deadline)
                self._note_latency(inputs, applied, deadline)
                self.buffer.before_step(self.obs)
                self.obs, reward, success, truncated, self.info = self.env.step(action)
                self.buffer.after_step(action, reward, success, **corrections)
                self.flow.stepped(success, truncated)
                self._publish_pose()
                stats.step_durations.append(clock() - woke)
            stats.missed_ticks = scheduler.missed
            self._publish_hud()
            if decision.quit:
                return
            present()

    def _sample_late(self, inputs: list, late: list) -> tuple[np.ndarray, object]:
        """Input that arrived since the drain: the device takes it now, the flow at the next tick.
        Returns the action and the command it came from."""
        inputs.append((time.perf_counter(), late))
        self.device.handle_events(late)
        command = self.device.poll()
        self._late_window_events.extend(late)
        self._late_device_events = self._late_device_events | command.events
        return self.mapper(command, self._arm()), command

    def _decide(self, events) -> tuple[Decision, object]:
        pg = self.pygame
        extra = set(self._late_device_events)
        window_events = self._late_window_events + list(events)
        self._late_window_events, self._late_device_events = [], frozenset()
        for event in window_events:
            if event.type == pg.QUIT:  # the window's close button
                extra.add(Event.QUIT)
            elif event.type == pg.VIDEORESIZE:
                self.window_size = (event.w, event.h)
        if self._reads_window:
            self.device.handle_events(events)  # late events were handed over when they came in
        if self.window_keys is not None:
            self.window_keys.handle_events(window_events)
            extra |= self.window_keys.poll().events
        self.device.observe(self.obs)
        command = self.device.poll()
        wanted = command.events | extra
        if Event.PAUSE in wanted and self.source.reminder:
            self.source.take_break()  # pausing while the break reminder shows acknowledges it
        if Event.SLOWER in wanted or Event.FASTER in wanted:
            self.set_speed(next_speed(self.speed, faster=Event.FASTER in wanted))
            self.say(f"speed {self.speed:.2g}x real time")
        wanted = self._paused_step(wanted)
        moved = max(abs(v) for v in command.translation) > START_THRESHOLD or (
            command.gripper is not None and command.gripper != self.mapper.gripper)
        present = not self.device.status.startswith("unplugged")
        return self.flow.decide(wanted, moved=moved, device_present=present), command

    def _paused_step(self, wanted: set) -> set:
        """One STEP per tick while paused, however fast the presses came (they are counted, not merged)."""
        for keys in (self.device, self.window_keys):
            if hasattr(keys, "take_step_presses"):
                self._steps_wanted += keys.take_step_presses()
        wanted = set(wanted) - {Event.STEP}
        if self.flow.phase != Phase.PAUSED:
            self._steps_wanted = 0
        elif self._steps_wanted:
            self._steps_wanted -= 1
            wanted.add(Event.STEP)
        return wanted

    def _note_latency(self, inputs, applied: float, deadline: float) -> None:
        for arrival, batch in inputs:
            for event in batch:
                if event.type in self._input_types:
                    # Injected events (benchmark) carry the time they were posted: that counts
                    # the pick-up delay (posted -> taken off SDL's queue) too.
                    posted = getattr(event, "injected_at", None)
                    if posted is not None:
                        self.stats.pickup_delay.append(arrival - posted)
                        self.stats.tick_wait.append(deadline - posted)
                    self.stats.input_latency.append(applied - (posted if posted is not None else arrival))

    def _publish_hud(self) -> None:
        flow, request, obs = self.flow, self.request, self.obs
        kept, wanted, progress = self.source.hud(flow.kept)
        info = self.info
        hand_to_object = float(np.linalg.norm(self.env.hand_pos - obs[4:7]))
        if self.notice and time.perf_counter() > self._notice_until:
            self.notice = ""
        self.hud = HudState(
            task=self.env.task, episode=min(kept + 1, wanted), episodes=wanted,
            phase=flow.phase.value, steps=flow.steps, max_steps=self.env.max_steps, control_hz=CONTROL_HZ,
            speed=self.speed, device=self.device.name, device_status=self.device.status, seed=request.seed,
            spawn_index=request.index,
            success=flow.first_success is not None and flow.phase in (Phase.RECORDING, Phase.REVIEW, Phase.PAUSED),
            end_reason=flow.ended.reason if flow.ended and flow.phase == Phase.REVIEW else "",
            keepable=flow.keepable, device_lost=flow.device_lost, settings=self.config.settings_text,
            help_lines=self.help_lines, progress=progress, reminder=self.source.reminder, notice=self.notice,
            practice=self.source.practice, hand_to_object=hand_to_object,
            object_used=self.object_used,
            to_goal=self.env.goal_distance(obs, info),
            # MetaWorld reports grasp_success on tasks without anything to grasp too: only near the object.
            grasped=bool(info.get("grasp_success", 0.0)) and hand_to_object < 0.05,
            view=self.config.camera if self.device.frame != "world" else "", keys=self.keys,
            **self._driver_hud())

    def _driver_hud(self) -> dict:
        if self.pilot is None:
            return {}
        takeover = self.takeover
        return {"driver": "you" if takeover.person else "policy",
                "driver_s": takeover.driving_for(time.perf_counter()) if self.flow.phase == Phase.RECORDING else 0.0,
                "takeovers": takeover.stats.takeovers}

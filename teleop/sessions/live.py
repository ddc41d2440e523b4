"""A batch session through the live window (``teleop session run`` with a human device).

:class:`SessionSource` is the window's :class:`~teleop.live.episode_source.EpisodeSource`
for a session: spawns are the session's tickets, a kept episode goes through
``Session.keep`` and an attempt that ends unkept through ``Session.discard``.
:func:`run_in_window` opens one window per task block.

Discard in a session. The live window's DISCARD means "the same spawn again"
(the operator fumbled and wants another go), while ``Session.discard`` puts the
spawn back into the pool and the pool hands out the least-tried spawn next. A
human expects the first: so a discard closes the ticket (the attempt is logged
and counted) and asks the session for the same spawn again, which it gives
until the spawn has had ``attempts_per_spawn`` tries; then it is retired and a
fresh spawn comes up, with a notice on the HUD. "Fresh spawn" (N / the pad's
reset) logs the attempt as "skipped" and takes the pool's next spawn; the
skipped one comes back later. Quitting logs nothing for the attempt in
progress: on resume its spawn is offered again, untouched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from teleop.env import CONTROL_HZ
from teleop.episode import Episode
from teleop.live.control_loop import ControlLoop
from teleop.live.episode_source import EpisodeSource
from teleop.live.pace import DEFAULT_SPEED
from teleop.live.timing import LoopStats
from teleop.live.window import LiveConfig, LiveResult, run_live
from teleop.spawn import Spawn


class SessionSource(EpisodeSource):
    """One task block of a :class:`~teleop.sessions.session.Session`: the first block still short of episodes.

    A window shows one task (its scene is built for it), so a session of several
    blocks opens one window per block; :func:`run_in_window` loops.
    """

    keep_failures = False  # a session wants successes; a kept failure is logged "failed", not written

    def __init__(self, session):
        self.session = session
        blocks = [b for b in session.plan.tasks if session.kept_count(b.task) < b.episodes]
        if not blocks:
            raise ValueError("the session has every episode it wants")
        self.block = blocks[0]
        self.task = self.block.task
        self.block_number = [b.task for b in session.plan.tasks].index(self.task) + 1
        self.wanted = self.block.episodes
        self.episodes = self.wanted - session.kept_count(self.task)
        self.ticket = None  # the attempt in progress (handed out, neither kept nor discarded)
        self._last = None  # the ticket of the attempt that ended last
        self._written: list[Path] = []
        self.notice = ""

    def next_spawn(self, kind: str) -> Optional[Spawn]:
        if self.ticket is not None:  # a reset the loop did not report as kept or dropped: keep the same attempt
            return self.ticket.spawn
        if self.session.kept_count(self.task) >= self.wanted:
            return None  # this block is done; the next block gets its own window
        again = self._last if kind == "same" else None
        self.ticket = self.session.next_ticket(again=again)
        if self.ticket is None or self.ticket.task != self.task:  # cannot happen while the block is short
            raise RuntimeError(f"session handed out {self.ticket} while {self.task} still wants episodes")
        self.notice = ""
        if again is not None and self.ticket.spawn.index != again.spawn.index:
            self.notice = (f"spawn #{again.spawn.index} was tried {self.session.plan.attempts_per_spawn} times: "
                           "replaced by a fresh one")
        return self.ticket.spawn

    def keep(self, episode: Episode) -> Optional[Path]:
        # Written synchronously (atomic, then the state): it happens between episodes, and the
        # loop rebases its tick schedule after the reset that follows.
        ticket, self.ticket, self._last = self.ticket, None, self.ticket
        path = self.session.keep(ticket, episode)
        if path is not None:
            self._written.append(path)
        return path

    def drop(self, reason: str, steps: int) -> None:
        ticket, self.ticket, self._last = self.ticket, None, self.ticket
        self.session.discard(ticket, reason=reason, steps=steps)

    def hud(self, kept_in_window: int) -> tuple[int, int, tuple[str, ...]]:
        session, plan = self.session, self.session.plan
        total_kept = sum(min(session.kept_count(b.task), b.episodes) for b in plan.tasks)
        total = sum(b.episodes for b in plan.tasks)
        lines = [f"session {plan.name}: task {self.block_number} of {len(plan.tasks)}",
                 f"kept {session.kept_count(self.task)}/{self.wanted} here, {total_kept}/{total} in all",
                 f"operator {session.operator}"]
        if self.ticket is not None:
            lines.append(f"attempt {self.ticket.attempt} of {plan.attempts_per_spawn} on this spawn")
        if self.notice:
            lines.append(self.notice)
        return session.kept_count(self.task), self.wanted, tuple(lines)

    @property
    def reminder(self) -> str:
        if not self.session.break_due():
            return ""
        minutes = (self.session.state["active_s"] - self.session.state["break_at_active_s"]) / 60
        return f"Break time: {minutes:.0f} min recorded. P: pause for a break"

    def take_break(self) -> None:
        self.session.take_break()

    @property
    def written(self) -> list[Path]:
        return self._written


def run_in_window(session, device: str, *, on_start: Optional[Callable[[ControlLoop], None]] = None,
                  pilots: Optional[dict] = None, **config) -> LiveResult:
    """``teleop session run`` with a human device: the live window, fed by ``session``.

    One window per task block still short of episodes (the scene is built for
    one task), until the plan is done or the operator quits; a quit leaves the
    session resumable (the module docstring says what a discard, a fresh
    spawn and a quit do to the pool). ``config``: further
    :class:`LiveConfig` fields (camera, view_size, fps, ...). Returns the last
    window's result, with every episode written in this run.
    """
    from devices.registry import make_device
    from teleop.live.device_settings import describe, resolve

    if device == "gamepad":
        from devices.gamepad import allow_background_events

        allow_background_events()  # before SDL starts, or pad input without window focus is dropped
    settings, _ = resolve(device, save=False)  # the operator's saved sensitivity / inversion
    plan, written, result = session.plan, [], None
    while not session.done:
        source = SessionSource(session)
        live = LiveConfig(task=source.task, episodes=source.episodes, max_steps=plan.max_steps,
                          speed=plan.speed if plan.speed is not None else DEFAULT_SPEED[device],
                          hold_s=plan.hold_steps / CONTROL_HZ, operator=session.operator,
                          session=session.session_id, settings=settings, settings_text=describe(settings),
                          pilot=(pilots or {}).get(source.task), **config)
        result = run_live(make_device(device), live, source=source, on_start=on_start)
        written += result.written
        if not result.finished:
            break  # the operator quit: the session stays resumable
    if result is None:  # nothing was left to record
        return LiveResult([], LoopStats(), 0, finished=True)
    return LiveResult(written, result.stats, len(written), finished=session.done)

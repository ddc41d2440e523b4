"""Where the live window's spawns come from and where its episodes go.

The live loop (:mod:`teleop.live`) is the same for ``teleop record`` and for a
batch session; only this part differs, so it is an interface with two
implementations instead of two loops:

* :class:`RecordSource` (``teleop record --device keyboard|gamepad|spacemouse``):
  spawns from a :class:`~teleop.spawn.SpawnStream`, skipping seeds already in
  the output folder; kept episodes go to a :class:`BackgroundWriter`.
* :class:`SessionSource` (``teleop session run`` with a human device): spawns
  are the session's tickets, a kept episode goes through ``Session.keep`` and
  an attempt that ends unkept through ``Session.discard``.

All methods run on the control thread, once per attempt (not per tick), except
:meth:`EpisodeSource.hud` and :attr:`EpisodeSource.reminder`, which are cheap.

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
from typing import Optional

from teleop.collect import existing_output, prepare_output
from teleop.episode import Episode
from teleop.recorder import BackgroundWriter
from teleop.spawn import Spawn, SpawnStream


class EpisodeSource:
    """Supplies the next spawn and receives the outcome of each attempt; see the module docstring."""

    task: str
    episodes: int  # episodes this window is to keep before it closes
    keep_failures: bool = True  # False: KEEP on an unsuccessful episode drops it as "failed"

    def next_spawn(self, kind: str) -> Optional[Spawn]:
        """kind "new": the next spawn; "same": the current one again. None: nothing left to record."""
        raise NotImplementedError

    def keep(self, episode: Episode) -> Optional[Path]:
        """Take the episode of the current spawn; returns where it is (or will be) written."""
        raise NotImplementedError

    def drop(self, reason: str, steps: int) -> None:
        """The attempt on the current spawn ended unkept (reason from ``Decision.dropped``)."""

    def hud(self, kept_in_window: int) -> tuple[int, int, tuple[str, ...]]:
        """(kept, wanted, extra HUD lines) for the panel."""
        return kept_in_window, self.episodes, ()

    @property
    def reminder(self) -> str:
        """A break reminder to show, or ""."""
        return ""

    def take_break(self) -> None:
        """The operator acknowledged the reminder."""

    @property
    def written(self) -> list[Path]:
        raise NotImplementedError

    def close(self) -> None:
        """Every kept episode is on disk when this returns (raises a write error, if any)."""


class RecordSource(EpisodeSource):
    """``teleop record``: a spawn stream and a background writer into one output folder."""

    def __init__(self, task: str, episodes: int, out: str, *, spawn: str, seed: int, spawn_low, spawn_high):
        self.task, self.episodes = task, episodes
        self.out = prepare_output(out, task)
        start_index, self.used_seeds = existing_output(self.out)
        self.stream = SpawnStream(spawn_low, spawn_high, strategy=spawn, base_seed=seed)
        self.writer = BackgroundWriter(self.out, start_index)
        self._index = -1
        self._current: Optional[Spawn] = None

    def next_spawn(self, kind: str) -> Optional[Spawn]:
        if kind == "new" or self._current is None:
            self._index += 1
            while self.stream[self._index].seed in self.used_seeds:  # appending to a folder: never a seed twice
                self._index += 1
            self._current = self.stream[self._index]
        return self._current

    def keep(self, episode: Episode) -> Optional[Path]:
        path = self.writer.submit(episode)
        self.used_seeds.add(self._current.seed)
        return path

    @property
    def written(self) -> list[Path]:
        return self.writer.written

    def close(self) -> None:
        self.writer.close()


class SessionSource(EpisodeSource):
    """One task block of a :class:`~teleop.session.Session`: the first block still short of episodes.

    A window shows one task (its scene is built for it), so a session of several
    blocks opens one window per block; :func:`teleop.live.run_session` loops.
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

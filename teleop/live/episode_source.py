"""Where the live window's spawns come from and where its episodes go.

The live loop (:mod:`teleop.live.window`) is the same for ``teleop record`` and for a
batch session; only this part differs, so it is an interface:

* :class:`RecordSource` (``teleop record --device keyboard|gamepad|spacemouse``):
  spawns from a :class:`~teleop.spawn.SpawnStream`, skipping seeds already in
  the output folder; kept episodes go to a :class:`BackgroundWriter`.
* :class:`teleop.sessions.live.SessionSource` (``teleop session run`` with a human
  device): spawns are the session's tickets. It lives with the sessions, which
  use the live window; the live window never imports a session.

All methods run on the control thread, once per attempt (not per tick), except
:meth:`EpisodeSource.hud` and :attr:`EpisodeSource.reminder`, which are cheap.
"""

from __future__ import annotations

import sys
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
    keep_failures: bool = False  # False: KEEP on an unsuccessful episode drops it as "failed"
    practice: bool = False  # True: nothing is recorded or kept (the HUD says so)

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
    """``teleop record``: a spawn stream and a background writer into one output folder.
    ``spawns``: a given list instead of the stream (``teleop correct --spawns-from``); the window
    closes when it runs out."""

    def __init__(self, task: str, episodes: int, out: str, *, spawn: str, seed: int, spawn_low, spawn_high,
                 keep_failures: bool = False, spawns: Optional[list[Spawn]] = None):
        self.task, self.episodes, self.keep_failures = task, episodes, keep_failures
        self.out = prepare_output(out, task)
        start_index, self.used_seeds = existing_output(self.out)
        self.stream = (SpawnStream(spawn_low, spawn_high, strategy=spawn, base_seed=seed) if spawns is None
                       else list(spawns))
        self.writer = BackgroundWriter(self.out, start_index)
        self._index = -1
        self._current: Optional[Spawn] = None

    def next_spawn(self, kind: str) -> Optional[Spawn]:
        if kind == "new" or self._current is None:
            self._index += 1
            given = isinstance(self.stream, list)
            while not (given and self._index >= len(self.stream)) and \
                    self.stream[self._index].seed in self.used_seeds:  # appending to a folder: never a seed twice
                self._index += 1
            if given and self._index >= len(self.stream):
                return None  # every given spawn has had its attempt
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


class PracticeSource(EpisodeSource):
    """``teleop record --practice``: fresh spawns for as long as the operator likes; nothing is saved."""

    practice = True
    keep_failures = True  # "keep" just moves on to the next spawn

    def __init__(self, task: str, *, spawn: str, seed: int, spawn_low, spawn_high):
        self.task = task
        self.episodes = sys.maxsize  # until the operator quits
        self.stream = SpawnStream(spawn_low, spawn_high, strategy=spawn, base_seed=seed)
        self._index = -1

    def next_spawn(self, kind: str) -> Optional[Spawn]:
        if kind == "new" or self._index < 0:
            self._index += 1
        return self.stream[self._index]

    def keep(self, episode: Episode) -> Optional[Path]:
        return None

    def hud(self, kept_in_window: int) -> tuple[int, int, tuple[str, ...]]:
        return kept_in_window, 0, ("PRACTICE: nothing is saved",)

    @property
    def written(self) -> list[Path]:
        return []

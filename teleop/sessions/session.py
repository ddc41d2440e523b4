"""A batch collection session: a plan worked through task block by task block, resumable.

Folder layout (``DIR`` is ``teleop session run PLAN --out DIR``)::

    DIR/session.json          state: session id, seed range, spawn pool, attempt log (atomic writes)
    DIR/session.lock          flock held by the one process running the session
    DIR/plan.toml             the plan as it was when the session started
    DIR/<task>/episode_*.hdf5 kept episodes, one folder per task (the usual episode folder)
    DIR/report/               the session report (``teleop session report DIR``)

Spawns. Each task gets its own seed stream inside the session's seed range:
the range comes from a hash of the session id (plan, operator, machine, time,
random bits) into 2**32 slots of 2**24 seeds, so sessions run by other
operators on other machines draw disjoint seeds and merge without clashes.
A task of N wanted episodes starts with N planned spawns (points 0..N-1 of
the plan's spawn sequence, which covers the spawn box); a discarded or
failed attempt puts its spawn back into the pool, and a spawn that failed
``attempts_per_spawn`` times is retired and replaced by the next point.

Resume. The episode files are the truth: at startup every task folder is
scanned, a file the state does not know (killed between writing the file and
the state) is adopted, a state entry without its file goes back to the pool,
and temporaries of a killed writer are removed. So nothing is recorded twice
and nothing kept is lost.

Running a session (scripted or live) is ``teleop/session_run.py``. The live
window (human devices) drives a session through these calls::

    with Session.open(plan, out, operator="alice") as session:
        while (ticket := session.next_ticket()) is not None:
            obs = env.reset(ticket.spawn)            # env = TaskEnv(ticket.task, max_steps=ticket.max_steps)
            ...                                      # the operator drives, an EpisodeBuffer records
            episode = buffer.to_episode(spawn_attrs=spawn_attrs(env, ticket.spawn, obs), success=ok,
                                        device=name, **session.identity())
            session.keep(ticket, episode)            # or session.discard(ticket)
            if session.break_due():
                ...                                  # show the reminder, then session.take_break()
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from teleop.atomic import write_json
from teleop.episode import (Episode, EpisodeError, episode_files, episode_name, next_index,
                            read_attrs, remove_stale_temporaries, utc_now, write_episode)
from teleop.errors import ToolkitError
from teleop.sessions.plan import SessionPlan, load_plan
from teleop.spawn import Spawn, SpawnStream

STATE_NAME = "session.json"
LOCK_NAME = "session.lock"
PLAN_NAME = "plan.toml"
STATE_FORMAT = "teleop-session/1"
SEEDS_PER_SESSION = 2**24
SEEDS_PER_TASK = 2**20
MAX_TASKS = SEEDS_PER_SESSION // SEEDS_PER_TASK


class SessionBusyError(ToolkitError):
    """Another process holds the session folder."""


def session_base_seed(session_id: str) -> int:
    """First seed of the session's range: slot 1..2**32-1 of 2**24 seeds (slot 0 is left to `teleop record`)."""
    slot = 1 + int.from_bytes(hashlib.sha256(session_id.encode()).digest()[:4], "big") % (2**32 - 1)
    return slot * SEEDS_PER_SESSION


def new_session_id(plan_name: str, operator: str) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    raw = f"{plan_name}-{operator}-{socket.gethostname()}-{stamp}-{secrets.token_hex(3)}"
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", raw)


@dataclass(frozen=True)
class Ticket:
    """One attempt the session hands out: record ``task`` from ``spawn``."""

    task: str
    spawn: Spawn
    attempt: int  # 1 for the first try of this spawn
    max_steps: int
    hold_steps: int
    issued_at: float  # time.monotonic() when handed out


# --------------------------------------------------------------------- files
def read_state(folder: str | Path) -> dict:
    path = Path(folder) / STATE_NAME
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        raise ToolkitError(f"{folder} is not a session folder (no {STATE_NAME}): "
                           "pass the --out folder of `teleop session run`") from None
    except (OSError, json.JSONDecodeError) as error:
        raise ToolkitError(f"{path} is unreadable ({error}); the episode files are intact, "
                           "move the state file away to rebuild it from them") from error
    if state.get("format") != STATE_FORMAT:
        raise ToolkitError(f"{path}: format {state.get('format')!r} is not {STATE_FORMAT!r}")
    return state


def acquire_lock(folder: Path) -> int:
    """Hold an exclusive flock on the session folder; a second process is refused, nothing touched."""
    import fcntl

    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise SessionBusyError(f"session folder {folder} is in use by {holder}: wait for it to finish or stop "
                               "it; two processes on one session would record the same spawns") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {utc_now()}\n".encode(), 0)
    return fd


def duration_of(attrs: dict) -> float:
    """Seconds between an episode's started_at and ended_at attrs (0 when unreadable)."""
    try:
        start = datetime.fromisoformat(str(attrs["started_at"]).replace("Z", "+00:00"))
        end = datetime.fromisoformat(str(attrs["ended_at"]).replace("Z", "+00:00"))
        return max(0.0, (end - start).total_seconds())
    except (KeyError, ValueError):
        return 0.0


# --------------------------------------------------------------------- session
class Session:
    """An open session: holds the lock, hands out spawns, keeps and discards episodes."""

    def __init__(self, folder: Path, plan: SessionPlan, state: dict, operator: str, lock_fd: int):
        self.folder = folder
        self.plan = plan
        self.state = state
        self.operator = operator
        self._lock_fd = lock_fd
        self._streams: dict[str, SpawnStream] = {}
        self._outstanding: Ticket | None = None

    # ------------------------------------------------------------ opening
    @classmethod
    def open(cls, plan: SessionPlan | str | Path, out: str | Path, *, operator: str | None = None) -> "Session":
        """Start a session in ``out``, or resume the one there. Refuses a folder another process holds."""
        if not isinstance(plan, SessionPlan):
            plan = load_plan(plan)
        if len(plan.tasks) > MAX_TASKS:
            raise ToolkitError(f"a session holds at most {MAX_TASKS} tasks, the plan has {len(plan.tasks)}: split it")
        operator = plan.choose_operator(operator)
        folder = Path(out)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ToolkitError(f"cannot create session folder {folder}: {error.strerror or error}") from error
        lock_fd = acquire_lock(folder)
        try:
            if (folder / STATE_NAME).exists():
                state = read_state(folder)
                _check_same_plan(state, plan, folder)
            else:
                state = _new_state(plan, operator, folder)
            state["plan"] = plan.to_dict()
            session = cls(folder, plan, state, operator, lock_fd)
            session._extend_pools()
            session._reconcile()
            session._save()
        except BaseException:
            os.close(lock_fd)
            raise
        return session

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False

    @property
    def session_id(self) -> str:
        return self.state["session_id"]

    def identity(self) -> dict:
        """The keyword arguments ``EpisodeBuffer.to_episode`` needs to label an episode with this session."""
        return {"operator": self.operator, "session": self.session_id,
                "extra_attrs": {"hostname": socket.gethostname()}}

    def task_folder(self, task: str) -> Path:
        return self.folder / task

    # ------------------------------------------------------------ the pool
    def _stream(self, task: str) -> SpawnStream:
        if task not in self._streams:
            t = self.state["tasks"][task]
            self._streams[task] = SpawnStream(t["spawn_low"], t["spawn_high"], strategy=self.state["spawn"],
                                              base_seed=t["base_seed"])
        return self._streams[task]

    def _extend_pools(self) -> None:
        """Plan as many spawns as episodes are wanted (after a plan raised a count, more)."""
        for block in self.plan.tasks:
            t = self.state["tasks"][block.task]
            while len(t["planned"]) - len(t["retired"]) < block.episodes:
                t["planned"].append(t["next_new"])
                t["next_new"] += 1

    def pending(self, task: str) -> list[int]:
        """Spawn indices still to record, in the order they will be handed out."""
        t = self.state["tasks"][task]
        done = set(map(int, t["kept"])) | set(t["retired"])
        waiting = [i for i in t["planned"] if i not in done]
        return sorted(waiting, key=lambda i: (t["attempts"].get(str(i), 0), i))

    def kept_count(self, task: str) -> int:
        return len(self.state["tasks"][task]["kept"])

    @property
    def done(self) -> bool:
        return all(self.kept_count(b.task) >= b.episodes for b in self.plan.tasks)

    def next_ticket(self, *, again: Ticket | None = None) -> Ticket | None:
        """The next attempt to record (tasks in plan order), or None when every task has its episodes.

        ``again``: a ticket just discarded; its spawn is handed out again while it is still in the pool
        (an operator's immediate retry; after ``attempts_per_spawn`` tries it is retired and replaced)."""
        if self._outstanding is not None:
            raise ToolkitError("next_ticket() called before the previous ticket was kept or discarded")
        for block in self.plan.tasks:
            if self.kept_count(block.task) >= block.episodes:
                continue
            pending = self.pending(block.task)
            retry = again is not None and again.task == block.task and again.spawn.index in pending
            index = again.spawn.index if retry else pending[0]
            attempts = self.state["tasks"][block.task]["attempts"].get(str(index), 0)
            self._outstanding = Ticket(block.task, self._stream(block.task)[index], attempts + 1,
                                       self.plan.max_steps, self.plan.hold_steps, time.monotonic())
            return self._outstanding
        return None

    def _close_ticket(self, ticket: Ticket) -> float:
        if ticket is not self._outstanding:
            raise ToolkitError("this ticket is not the one the session handed out last")
        self._outstanding = None
        return time.monotonic() - ticket.issued_at

    # ------------------------------------------------------------ outcomes
    def keep(self, ticket: Ticket, episode: Episode) -> Path | None:
        """Write a successful episode atomically and count it; a failed one is discarded instead."""
        if not episode.succeeded:
            self.discard(ticket, reason="failed", steps=episode.num_steps)
            return None
        if int(episode.attrs["seed"]) != ticket.spawn.seed or episode.task != ticket.task:
            raise ToolkitError(f"episode (task {episode.task}, seed {episode.attrs['seed']}) was not recorded from "
                               f"the ticket's spawn (task {ticket.task}, seed {ticket.spawn.seed})")
        duration = self._close_ticket(ticket)
        episode.attrs.update(operator=self.operator, session=self.session_id, hostname=socket.gethostname())
        folder = self.task_folder(ticket.task)
        path = write_episode(folder / episode_name(next_index(folder)), episode)
        t = self.state["tasks"][ticket.task]
        t["kept"][str(ticket.spawn.index)] = path.name
        self._log(ticket, "kept", duration, episode.num_steps, file=path.name)
        return path

    def discard(self, ticket: Ticket, *, reason: str = "discarded", steps: int = 0, retry: bool = True) -> None:
        """The attempt is not kept: its spawn goes back into the pool (``retry=False`` retires it at once)."""
        duration = self._close_ticket(ticket)
        t = self.state["tasks"][ticket.task]
        key = str(ticket.spawn.index)
        t["attempts"][key] = t["attempts"].get(key, 0) + 1
        if not retry or t["attempts"][key] >= self.plan.attempts_per_spawn:
            t["retired"].append(ticket.spawn.index)
            self._extend_pools()
        self._log(ticket, reason, duration, steps)

    def _log(self, ticket: Ticket, outcome: str, duration: float, steps: int, **extra) -> None:
        self.state["log"].append({"task": ticket.task, "operator": self.operator, "seed": ticket.spawn.seed,
                                  "spawn_index": ticket.spawn.index, "outcome": outcome, "steps": int(steps),
                                  "duration_s": round(duration, 4), "at": utc_now(), **extra})
        self.state["active_s"] = self.state.get("active_s", 0.0) + duration
        self._save()

    # ------------------------------------------------------------ breaks
    def break_due(self) -> bool:
        every = self.plan.break_every_minutes
        return every is not None and self.state["active_s"] - self.state["break_at_active_s"] >= every * 60

    def take_break(self) -> None:
        self.state["break_at_active_s"] = self.state["active_s"]
        self._save()

    # ------------------------------------------------------------ state
    def _save(self) -> None:
        self.state["updated_at"] = utc_now()
        write_json(self.folder / STATE_NAME, self.state)

    def _reconcile(self) -> None:
        """Make the state agree with the episode files on disk (the files are the truth)."""
        for block in self.plan.tasks:
            folder = self.task_folder(block.task)
            folder.mkdir(exist_ok=True)
            remove_stale_temporaries(folder)
            t = self.state["tasks"][block.task]
            on_disk: dict[int, tuple[str, dict]] = {}
            for path in episode_files(folder):
                try:
                    attrs = read_attrs(path)
                except EpisodeError as error:
                    raise ToolkitError(f"{error}; move that file out of the session folder and run again") from error
                if attrs.get("session") != self.session_id:
                    raise ToolkitError(f"{path} belongs to session {attrs.get('session')!r}, not {self.session_id}: "
                                       "each session needs its own --out folder")
                index = int(attrs["spawn_index"])
                if int(attrs["seed"]) != t["base_seed"] + index:
                    raise ToolkitError(f"{path}: seed {attrs['seed']} is not spawn {index} of this session")
                if index in on_disk:
                    raise ToolkitError(f"{path} and {on_disk[index][0]} record the same spawn: move one away")
                on_disk[index] = (path.name, attrs)
            for key in list(t["kept"]):
                if int(key) not in on_disk:  # the state got ahead of a file that never landed
                    del t["kept"][key]
            for index, (name, attrs) in on_disk.items():
                if t["kept"].get(str(index)) != name:  # killed between writing the file and the state
                    t["kept"][str(index)] = name
                    if index not in t["planned"]:
                        t["planned"].append(index)
                        t["next_new"] = max(t["next_new"], index + 1)
                    if index in t["retired"]:
                        t["retired"].remove(index)
                    self.state["log"].append({
                        "task": block.task, "operator": str(attrs.get("operator", "")), "seed": int(attrs["seed"]),
                        "spawn_index": index, "outcome": "kept", "steps": int(attrs["num_steps"]),
                        "duration_s": round(duration_of(attrs), 4), "at": str(attrs["ended_at"]), "file": name,
                        "recovered": True})
        self._extend_pools()


def _new_state(plan: SessionPlan, operator: str, folder: Path) -> dict:
    from teleop.env import spawn_box

    session_id = new_session_id(plan.name, operator)
    base = session_base_seed(session_id)
    tasks = {}
    for k, block in enumerate(plan.tasks):
        low, high = spawn_box(block.task)
        tasks[block.task] = {"base_seed": base + k * SEEDS_PER_TASK, "spawn_low": low.tolist(),
                             "spawn_high": high.tolist(), "planned": [], "next_new": 0, "attempts": {},
                             "retired": [], "kept": {}}
    (folder / PLAN_NAME).write_text(plan.source)
    return {"format": STATE_FORMAT, "session_id": session_id, "base_seed": base,
            "seed_range": [base, base + SEEDS_PER_SESSION - 1], "hostname": socket.gethostname(),
            "created_at": utc_now(), "spawn": plan.spawn, "tasks": tasks, "log": [], "active_s": 0.0,
            "break_at_active_s": 0.0}


def _check_same_plan(state: dict, plan: SessionPlan, folder: Path) -> None:
    before = [t["task"] for t in state["plan"]["tasks"]]
    now = [t.task for t in plan.tasks]
    if before != now or state["spawn"] != plan.spawn:
        raise ToolkitError(f"{folder} holds a session of tasks {', '.join(before)} with {state['spawn']} spawns; the "
                           f"plan now says {', '.join(now)} with {plan.spawn} spawns: use a new --out folder "
                           "(only episode counts may change when resuming)")

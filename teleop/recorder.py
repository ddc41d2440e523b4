"""Buffers one episode step by step, and writes finished episodes off the control loop.

Per-step cost is a handful of numpy copies into preallocated arrays (the
MuJoCo state is read straight into its row), so recording adds a few percent
to ``env.step``. Files are written by a background thread, so the next
episode starts while the previous one is being compressed and fsynced.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import numpy as np

from teleop.env import CONTROL_HZ, TaskEnv
from teleop.episode import SCHEMA, Episode, EpisodeError, episode_name, utc_now, versions, write_episode


class EpisodeBuffer:
    """The steps of the episode being recorded, in preallocated arrays.

    They hold MetaWorld's 500 steps at first and double when a longer episode (a person's, with
    a longer step limit) needs it, up to the environment's step limit: one copy per doubling,
    never one per step.
    """

    FIRST_CAPACITY = 500

    def __init__(self, env: TaskEnv, *, cameras=(), image_size: int | None = None):
        self.env = env
        self.cameras = tuple(cameras)
        self.image_size = image_size or env.image_size
        n = min(env.max_steps, self.FIRST_CAPACITY)
        self.state = np.empty((n, 39), dtype=np.float64)
        self.qpos = np.empty((n, env.robot_dof), dtype=np.float64)
        self.qvel = np.empty((n, env.robot_dof), dtype=np.float64)
        self.sim_state = np.empty((n, env.state_size), dtype=np.float64)
        self.action = np.empty((n, 4), dtype=np.float32)
        self.reward = np.empty(n, dtype=np.float64)
        self.success = np.empty(n, dtype=bool)
        self.images = {c: np.empty((n, self.image_size, self.image_size, 3), dtype=np.uint8) for c in self.cameras}
        # Correction episodes only (teleop correct): who drove each step, and what the policy asked for.
        self.intervention = np.empty(n, dtype=bool)
        self.policy_action = np.empty((n, 4), dtype=np.float32)
        self.corrections = False
        self.t = 0
        self.started_at = utc_now()

    def _grow(self) -> None:
        n = min(2 * self.state.shape[0], self.env.max_steps)

        def grown(array: np.ndarray) -> np.ndarray:
            bigger = np.empty((n, *array.shape[1:]), dtype=array.dtype)
            bigger[:array.shape[0]] = array
            return bigger

        for name in ("state", "qpos", "qvel", "sim_state", "action", "reward", "success", "intervention",
                     "policy_action"):
            setattr(self, name, grown(getattr(self, name)))
        self.images = {c: grown(frames) for c, frames in self.images.items()}

    def clear(self) -> None:
        self.t = 0
        self.corrections = False
        self.started_at = utc_now()

    def before_step(self, obs: np.ndarray) -> None:
        """Record what the policy will see: call right before ``env.step``."""
        t = self.t
        if t >= self.state.shape[0]:
            if t >= self.env.max_steps:
                raise EpisodeError(f"episode longer than its step limit ({self.env.max_steps} steps)")
            self._grow()
        self.state[t] = obs
        self.qpos[t] = self.env.data.qpos[self.env._qpos_index]
        self.qvel[t] = self.env.data.qvel[self.env._qvel_index]
        self.env.sim_state(out=self.sim_state[t])
        for camera, frames in self.images.items():
            frames[t] = self.env.render(camera, self.image_size)

    def after_step(self, action: np.ndarray, reward: float, success: bool, *, intervention: bool | None = None,
                   policy_action: np.ndarray | None = None) -> None:
        """``intervention`` and ``policy_action`` on every step of a correction episode, never otherwise."""
        t = self.t
        if intervention is not None:
            if t and not self.corrections:
                raise ValueError("intervention given after steps without one: all or none of an episode's steps")
            self.corrections = True
            self.intervention[t] = intervention
            self.policy_action[t] = policy_action
        elif self.corrections:
            raise ValueError("a step without intervention in a correction episode")
        self.action[t] = action
        self.reward[t] = reward
        self.success[t] = success
        self.t = t + 1

    def to_episode(self, *, spawn_attrs: dict, success: bool, device: str, operator: str = "",
                   session: str = "", extra_attrs: dict | None = None) -> Episode:
        """Copy out the recorded steps (the buffer can be reused at once)."""
        t = self.t
        attrs = {
            "schema": SCHEMA,
            "task": self.env.task,
            **spawn_attrs,
            "success": bool(success),
            "num_steps": t,
            "control_hz": CONTROL_HZ,
            "device": device,
            "operator": operator,
            "session": session,
            "started_at": self.started_at,
            "ended_at": utc_now(),
            "versions": versions(),
            "cameras": ",".join(self.cameras),
        }
        if extra_attrs:
            attrs.update(extra_attrs)
        return Episode(
            attrs=attrs,
            state=self.state[:t].copy(),
            qpos=self.qpos[:t].copy(),
            qvel=self.qvel[:t].copy(),
            action=self.action[:t].copy(),
            reward=self.reward[:t].copy(),
            success=self.success[:t].copy(),
            sim_state=self.sim_state[:t].copy(),
            images={c: frames[:t].copy() for c, frames in self.images.items()},
            intervention=self.intervention[:t].copy() if self.corrections else None,
            policy_action=self.policy_action[:t].copy() if self.corrections else None,
        )


class BackgroundWriter:
    """Writes episodes to ``folder`` in a worker thread, numbering them from ``start_index``.

    A write error (disk full, folder gone) is raised from the next ``submit``
    or from ``close``; every file written before it stays intact.
    """

    def __init__(self, folder: str | Path, start_index: int = 0, *, max_pending: int = 4):
        self.folder = Path(folder)
        self.next_index = start_index
        self.written: list[Path] = []
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="episode-writer", daemon=True)
        self._thread.start()

    def submit(self, episode: Episode) -> Path:
        self.raise_if_failed()
        path = self.folder / episode_name(self.next_index)
        self.next_index += 1
        self._queue.put((path, episode))
        return path

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            path, episode = item
            if self._error is None:
                try:
                    write_episode(path, episode)
                    self.written.append(path)
                except BaseException as error:  # noqa: BLE001 - handed to the control thread
                    self._error = error

    def raise_if_failed(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self) -> None:
        """Wait for every pending write; raise the first write error, if any."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self.raise_if_failed()

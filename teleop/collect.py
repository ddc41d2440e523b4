"""Headless collection: a device drives the environment, episodes go to disk.

``run_episode`` is the one place where an episode is stepped and recorded;
the live window (for human devices) and batch sessions call it too.
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import numpy as np

from devices.base import Device
from teleop.correction import HAND_BACK_S, Takeover
from teleop.env import CONTROL_HZ, HOLD_STEPS, TaskEnv
from teleop.episode import Episode, episode_files, read_attrs, remove_stale_temporaries
from teleop.errors import ToolkitError
from teleop.mapping import ActionMapper
from teleop.recorder import BackgroundWriter, EpisodeBuffer
from teleop.spawn import DEFAULT_STRATEGY, Spawn, SpawnStream


@dataclass
class EpisodeResult:
    success: bool
    steps: int
    first_success_step: int | None


def spawn_attrs(env: TaskEnv, spawn: Spawn, obs: np.ndarray) -> dict:
    """What an episode file records about its spawn (after ``env.reset(spawn)``)."""
    return {
        "seed": int(spawn.seed),
        "spawn_index": int(spawn.index),
        "spawn_strategy": spawn.strategy,
        "rand_vec": env.rand_vec.copy(),
        "object_init_pos": np.asarray(obs[4:7], dtype=np.float64).copy(),
        "goal_pos": env.goal_pos,
        "spawn_low": env.spawn_low,
        "spawn_high": env.spawn_high,
    }


def run_episode(env: TaskEnv, device: Device, mapper: ActionMapper, obs: np.ndarray,
                buffer: EpisodeBuffer | None, *, hold_steps: int = HOLD_STEPS, pilot=None, takeover=None) -> EpisodeResult:
    """Step from ``obs`` (just after reset) until success + ``hold_steps`` or the step limit.

    With a ``pilot`` (teleop.correction.Pilot) and a ``takeover`` (teleop.correction.Takeover) the
    policy drives and the device takes over (a correction episode, timed in simulated seconds)."""
    device.reset()
    mapper.reset()
    if pilot is not None:
        pilot.reset()
        takeover.reset()
    if buffer is not None:
        buffer.clear()
    first_success = None
    steps = 0
    corrections = {}
    while True:
        device.observe(obs)
        command = device.poll()
        action = mapper(command)
        if pilot is not None:
            policy_action = pilot.act(obs, env.robot_qpos())
            action, person = takeover.step(command, action, policy_action, steps / CONTROL_HZ)
            corrections = {"intervention": person, "policy_action": policy_action}
        if buffer is not None:
            buffer.before_step(obs)
        obs, reward, success, truncated, _ = env.step(action)
        if buffer is not None:
            buffer.after_step(action, reward, success, **corrections)
        steps += 1
        if success and first_success is None:
            first_success = steps
        if truncated or (first_success is not None and steps >= first_success + hold_steps):
            break
    return EpisodeResult(success=first_success is not None, steps=steps, first_success_step=first_success)


def record_episode(env: TaskEnv, device: Device, mapper: ActionMapper, buffer: EpisodeBuffer, request: Spawn,
                   *, hold_steps: int = HOLD_STEPS, operator: str = "", session: str = "",
                   extra_attrs: dict | None = None, pilot=None, takeover=None) -> tuple[EpisodeResult, Episode]:
    """Reset to ``request``, run one episode and return it in memory (not written).

    The spawn comes from the caller, so a batch session can hand out spawns
    from its own pool instead of a plain stream.
    """
    obs = env.reset(request)
    attrs = spawn_attrs(env, request, obs)
    result = run_episode(env, device, mapper, obs, buffer, hold_steps=hold_steps, pilot=pilot, takeover=takeover)
    episode = buffer.to_episode(
        spawn_attrs=attrs, success=result.success, device=device.name, operator=operator, session=session,
        extra_attrs={"first_success_step": result.first_success_step or -1, "hostname": socket.gethostname(),
                     **getattr(device, "episode_attrs", {}), **(extra_attrs or {})})
    return result, episode


def prepare_output(out: str | Path, task: str) -> Path:
    """Create the output folder; refuse one that holds another task's episodes."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ToolkitError(f"cannot create output folder {out}: {error.strerror or error}; choose a writable --out")
    remove_stale_temporaries(out)
    existing = episode_files(out)
    if existing:
        try:
            other = read_attrs(existing[-1]).get("task")
        except ToolkitError:
            other = None
        if other is not None and other != task:
            raise ToolkitError(f"{out} already holds {other} episodes: use another --out for {task}")
    return out


def existing_output(out: Path) -> tuple[int, set[int]]:
    """(next episode number, spawn seeds already recorded) for a folder being appended to."""
    existing = episode_files(out)
    start_index = len(existing) and int(existing[-1].stem.split("_")[1]) + 1
    used_seeds = set()
    for path in existing:
        try:
            used_seeds.add(int(read_attrs(path)["seed"]))
        except ToolkitError:
            pass
    return start_index, used_seeds


def record_headless(device: Device, *, task: str, episodes: int, out: str | Path, seed: int = 0,
                    spawn: str = DEFAULT_STRATEGY, cameras=(), image_size: int = 128, keep_failures: bool = False,
                    hold_steps: int = HOLD_STEPS, max_steps: int = 500, operator: str = "", session: str = "",
                    max_attempts: int | None = None, progress: bool = True, pilot=None,
                    hand_back_s: float = HAND_BACK_S, spawns=None, totals: dict | None = None) -> list[Path]:
    """Record ``episodes`` kept episodes with a device that needs no window (the scripted expert).

    Returns the paths written. Each attempt consumes the next spawn of the stream,
    so a dropped failure never repeats its spawn.

    With a ``pilot`` (teleop.correction.Pilot) the policy drives and the device takes over (correction
    episodes; the simulated corrector). ``spawns``: the spawns to attempt, in order, instead of the stream
    (``teleop correct --spawns-from``); recording ends when they run out. ``totals``, if given, is filled
    with attempts, successes and, for corrections, takeovers and the steps each side drove.
    """
    if episodes < 1:
        raise ToolkitError(f"--episodes must be at least 1, got {episodes}")
    out = prepare_output(out, task)
    start_index, used_seeds = existing_output(out)
    env = TaskEnv(task, cameras=cameras, image_size=image_size, max_steps=max_steps)
    requests = (iter(spawns) if spawns is not None else
                (SpawnStream(env.spawn_low, env.spawn_high, strategy=spawn, base_seed=seed)[i] for i in count()))
    buffer = EpisodeBuffer(env, cameras=env.cameras, image_size=image_size)
    mapper = ActionMapper(device.name, device.frame)
    takeover = Takeover(world_frame=device.frame == "world", hand_back_s=hand_back_s) if pilot else None
    writer = BackgroundWriter(out, start_index)
    max_attempts = max_attempts or max(3 * episodes, episodes + 10)
    kept = failures = attempts = 0
    totals = totals if totals is not None else {}
    totals.update(attempts=0, successes=0, **({"takeovers": 0, "person_steps": 0, "policy_steps": 0} if pilot else {}))
    bar = _progress(episodes, task, progress)
    try:
        with device:
            for request in requests:
                if kept >= episodes:
                    break
                if attempts >= max_attempts and spawns is None:
                    raise ToolkitError(f"only {kept} of {episodes} episodes succeeded in {attempts} attempts; "
                                       "check the device, or pass --keep-failures")
                if request.seed in used_seeds:
                    continue  # appending to a folder: never record a spawn twice
                attempts += 1
                result, episode = record_episode(
                    env, device, mapper, buffer, request, hold_steps=hold_steps, operator=operator, session=session,
                    pilot=pilot, takeover=takeover,
                    extra_attrs={"mode": "correct", "policy": pilot.description, "hand_back_s": hand_back_s,
                                 "max_steps": env.max_steps} if pilot else None)
                totals["attempts"], totals["successes"] = attempts, totals["successes"] + int(result.success)
                if pilot is not None:
                    episode.attrs["takeovers"] = takeover.stats.takeovers
                    for key in ("takeovers", "person_steps", "policy_steps"):
                        totals[key] += getattr(takeover.stats, key)
                if not result.success:
                    failures += 1
                if result.success or keep_failures:
                    writer.submit(episode)
                    used_seeds.add(request.seed)
                    kept += 1
                    bar.update(1)
                bar.set_postfix(failed=failures, steps=result.steps, refresh=False)
    finally:
        bar.close()
        try:
            writer.close()
        finally:
            env.close()
    return writer.written


class _NoBar:
    def update(self, n): ...
    def set_postfix(self, *a, **k): ...
    def close(self): ...


def _progress(total: int, task: str, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=f"recording {task}", unit="ep", file=sys.stderr, dynamic_ncols=True)

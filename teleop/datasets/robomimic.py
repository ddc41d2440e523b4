"""``teleop export --format robomimic``: episodes -> one robomimic-layout HDF5 file.

robomimic's documented dataset layout (robomimic.github.io, "Dataset Structure";
``create_hdf5_filter_key`` in robomimic/utils/file_utils.py)::

    data                      attrs: total (samples in all demos), env_args (JSON: env_name, type, env_kwargs)
    data/demo_N               attrs: num_samples (+ our provenance: seed, operator, session, ...)
    data/demo_N/obs/<key>     (T, ...) observation before each action
    data/demo_N/next_obs/<key> (T, ...) observation after each action
    data/demo_N/actions       (T, 4)
    data/demo_N/rewards       (T,)
    data/demo_N/dones         (T,)  1 on the last step of the demo, else 0
    data/demo_N/states        (T, S) MuJoCo integration state before each action
    mask/<filter key>         byte strings of demo names: train, valid, operator_<name>

Observation keys: ``state`` (MetaWorld's 39 floats), its parts ``eef_pos``,
``gripper``, ``object``, ``goal``, the robot's ``qpos``/``qvel``, and
``<camera>_image`` for recorded cameras. The episode files hold the
observation before every action; the one after the last action is rebuilt by
replaying the episode, which must match the file exactly (it is checked).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from teleop.atomic import replacing
from teleop.episode import Episode, read_episode
from teleop.errors import ToolkitError

FORMATS = ("robomimic",)
GYM_ENV_TYPE = 2  # robomimic's EnvType.GYM_TYPE: MetaWorld is a gym-style environment
STATE_PARTS = {"eef_pos": slice(0, 3), "gripper": slice(3, 4), "object": slice(4, 18), "goal": slice(36, 39)}


@dataclass
class ExportResult:
    out: Path
    demos: int
    samples: int
    masks: dict  # filter key -> number of demos


def observations(episode: Episode) -> dict[str, np.ndarray]:
    """The obs/<key> arrays of one episode, (T, ...) each."""
    obs = {"state": episode.state, "qpos": episode.qpos, "qvel": episode.qvel}
    obs.update({name: episode.state[:, part] for name, part in STATE_PARTS.items()})
    obs.update({f"{camera}_image": frames for camera, frames in episode.images.items()})
    return obs


def final_observation(env, episode: Episode) -> dict[str, np.ndarray]:
    """Replay ``episode`` and return the observation after its last action, keyed like ``observations``.

    Every recorded MuJoCo state must come back bit for bit; observations may differ by rounding, as
    they do for a file recorded on another CPU (teleop.replay.within_rounding)."""
    from teleop.replay import within_rounding

    obs = env.reset(rand_vec=episode.rand_vec)
    sim = np.empty(env.state_size)
    for t in range(episode.num_steps):
        if not within_rounding(float(np.max(np.abs(obs - episode.state[t]))),
                               float(np.max(np.abs(env.sim_state(out=sim) - episode.sim_state[t])))):
            raise ToolkitError(f"{episode.path} does not replay here (MuJoCo state or observation differs at step "
                               f"{t}): the observation after its last action cannot be rebuilt; export on the "
                               "machine and versions that recorded it")
        obs, *_ = env.step(episode.action[t])
    final = {"state": obs, "qpos": env.robot_qpos(), "qvel": env.robot_qvel()}
    final.update({name: obs[part] for name, part in STATE_PARTS.items()})
    for camera, frames in episode.images.items():
        final[f"{camera}_image"] = env.render(camera, (frames.shape[1], frames.shape[2]))
    return final


def split_train_valid(names: list[str], valid_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """A seeded random split; at least one validation demo when there are two or more demos."""
    if not 0.0 <= valid_fraction < 1.0:
        raise ToolkitError(f"--valid-fraction must be in [0, 1), got {valid_fraction}")
    order = np.random.default_rng(seed).permutation(len(names))
    n_valid = int(round(valid_fraction * len(names)))
    if valid_fraction > 0 and len(names) >= 2:
        n_valid = min(max(1, n_valid), len(names) - 1)
    valid = {names[i] for i in order[:n_valid]}
    return [n for n in names if n not in valid], [n for n in names if n in valid]


def mask_key(operator: str) -> str:
    return "operator_" + (re.sub(r"[^A-Za-z0-9_.\-]+", "_", operator) or "unknown")


def export_robomimic(sources, out: str | os.PathLike, *, task: str | None = None, valid_fraction: float = 0.1,
                     split_seed: int = 0, progress: bool = False) -> ExportResult:
    """Write every episode of ``sources`` (session/episode folders or files) into one robomimic file, atomically."""
    import h5py

    from teleop.datasets.merge import EpisodeFilter, check_compatible, find_duplicates, select
    from teleop.env import MAX_STEPS, TaskEnv

    out = Path(out)
    chosen = select(sources, EpisodeFilter(task=task))
    task = check_compatible(chosen)
    duplicates = find_duplicates(chosen)
    if duplicates:
        later, earlier, why = duplicates[0]
        raise ToolkitError(f"{later['path']} duplicates {earlier['path']} ({why}): merge with `teleop merge "
                           "--skip-duplicates` first, then export the merged folder")
    names = [f"demo_{i}" for i in range(len(chosen))]
    train, valid = split_train_valid(names, valid_fraction, split_seed)
    first = chosen[0]
    # MetaWorld's horizon, or the longest episode exported when a person's demo ran past it (recorded with
    # a longer step limit): every demo must replay in full to rebuild its last observation.
    max_episode_steps = max(MAX_STEPS, *(int(e["num_steps"]) for e in chosen))
    env_args = {"env_name": task, "type": GYM_ENV_TYPE,
                "env_kwargs": {"benchmark": "metaworld", "goal_observable": True, "control_hz": float(first["control_hz"]),
                               "max_episode_steps": max_episode_steps, "toolkit": "teleop-act",
                               "versions": first.get("versions", {})}}
    env = TaskEnv(task, max_steps=max_episode_steps)
    operators: dict[str, list[str]] = {}
    total = 0
    try:
        with replacing(out) as tmp, h5py.File(tmp, "w") as f:
            data = f.create_group("data")
            for name, attrs in zip(names, _bar(chosen, progress)):
                episode = read_episode(attrs["path"], images=True)
                total += _write_demo(data.create_group(name), episode, final_observation(env, episode))
                operators.setdefault(mask_key(str(attrs.get("operator", ""))), []).append(name)
            data.attrs["total"] = total
            data.attrs["env_args"] = json.dumps(env_args)
            masks = {"train": train, "valid": valid, **operators}
            for key, demos in masks.items():
                f.create_dataset(f"mask/{key}", data=np.array(demos, dtype="S"))
    except OSError as error:
        raise ToolkitError(f"cannot write {out}: {error.strerror or error}") from error
    finally:
        env.close()
    return ExportResult(out, len(names), total, {k: len(v) for k, v in masks.items()})


def _write_demo(group, episode: Episode, final: dict) -> int:
    t = episode.num_steps
    group.attrs["num_samples"] = t
    a = episode.attrs
    for key in ("seed", "spawn_index", "operator", "session", "hostname", "success", "task", "started_at"):
        if key in a:
            group.attrs[key] = a[key]
    group.attrs["rand_vec"] = episode.rand_vec
    group.attrs["source_file"] = str(a.get("source_file") or Path(episode.path).resolve())
    obs = observations(episode)
    for key, values in obs.items():
        compression = {"compression": "gzip", "compression_opts": 1} if values.dtype == np.uint8 else {}
        group.create_dataset(f"obs/{key}", data=values, **compression)
        after = np.concatenate([values[1:], np.asarray(final[key], dtype=values.dtype)[None]], axis=0)
        group.create_dataset(f"next_obs/{key}", data=after, **compression)
    group.create_dataset("actions", data=episode.action)
    group.create_dataset("rewards", data=episode.reward)
    dones = np.zeros(t, dtype=np.int64)
    dones[-1] = 1
    group.create_dataset("dones", data=dones)
    group.create_dataset("states", data=episode.sim_state)
    return t


def _bar(items, enabled: bool):
    if not enabled:
        return items
    import sys

    from tqdm import tqdm

    return tqdm(items, desc="exporting", unit="demo", file=sys.stderr)

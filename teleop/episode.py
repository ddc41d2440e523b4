"""The episode file: one HDF5 file per episode. Every reader and writer uses this module.

Layout (schema ``teleop-episode/2``), T = number of steps::

    attrs  schema, task, seed, rand_vec, object_init_pos, goal_pos, spawn_strategy,
           spawn_index, success, num_steps, control_hz, device, operator, session,
           started_at, ended_at (ISO 8601 UTC), versions (JSON)
    /observations/state          (T, 39) float64  observation before each action
    /observations/qpos           (T, J)  float64  robot joint positions before each action
    /observations/qvel           (T, J)  float64  robot joint velocities before each action
    /observations/images/<cam>   (T, H, W, 3) uint8, optional, one frame per chunk, compressed
    /action                      (T, 4)  float32  in [-1, 1], exactly what the simulator received
    /reward                      (T,)    float64  reward after each action
    /success                     (T,)    bool     success after each action
    /sim_state                   (T, S)  float64  MuJoCo integration state before each action
    /intervention                (T,)    bool     optional (corrections): the person's command was applied
    /policy_action               (T, 4)  float32  optional (corrections): what the policy asked for, every step

Schema 2 added the two optional datasets (``teleop correct``); files of schema 1 have neither and
read as before (READABLE_SCHEMAS).

A file gets its final name ``episode_NNNNNN.hdf5`` only once it is complete:
it is written under a hidden temporary name, flushed, fsynced and renamed.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from teleop.atomic import TMP_SUFFIX, write_bytes
from teleop.errors import ToolkitError

SCHEMA = "teleop-episode/2"
READABLE_SCHEMAS = ("teleop-episode/1", SCHEMA)
FILE_PATTERN = re.compile(r"^episode_(\d{6,})\.hdf5$")
REQUIRED_ATTRS = (
    "schema", "task", "seed", "rand_vec", "object_init_pos", "goal_pos", "spawn_strategy",
    "success", "num_steps", "control_hz", "device", "operator", "session",
    "started_at", "ended_at", "versions",
)
# name -> (trailing shape or None for "any", dtype kind)
_REQUIRED_DATASETS = {
    "observations/state": ("f",),
    "observations/qpos": ("f",),
    "observations/qvel": ("f",),
    "action": ("f",),
    "reward": ("f",),
    "success": ("b",),
    "sim_state": ("f",),
}


class EpisodeError(ToolkitError):
    """An episode file that cannot be read or does not follow the schema; names the file."""


def episode_name(index: int) -> str:
    return f"episode_{index:06d}.hdf5"


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def versions() -> dict:
    import platform
    from importlib import metadata

    def version_of(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "unknown"

    return {
        "toolkit": version_of("teleop-act"),
        "metaworld": version_of("metaworld"),
        "mujoco": version_of("mujoco"),
        "python": platform.python_version(),
    }


@dataclass
class Episode:
    """One episode in memory: the attrs and the per-step arrays of the file."""

    attrs: dict
    state: np.ndarray  # (T, 39)
    qpos: np.ndarray  # (T, J)
    qvel: np.ndarray  # (T, J)
    action: np.ndarray  # (T, 4) float32
    reward: np.ndarray  # (T,)
    success: np.ndarray  # (T,) bool
    sim_state: np.ndarray  # (T, S)
    images: dict = field(default_factory=dict)  # camera -> (T, H, W, 3) uint8
    path: Path | None = None
    intervention: np.ndarray | None = None  # (T,) bool, correction episodes only: the person drove
    policy_action: np.ndarray | None = None  # (T, 4) float32, correction episodes only

    @property
    def is_correction(self) -> bool:
        return self.intervention is not None

    @property
    def num_steps(self) -> int:
        return int(self.action.shape[0])

    @property
    def seed(self) -> int:
        return int(self.attrs["seed"])

    @property
    def task(self) -> str:
        return str(self.attrs["task"])

    @property
    def object_init_pos(self) -> np.ndarray:
        return np.asarray(self.attrs["object_init_pos"], dtype=np.float64)

    @property
    def rand_vec(self) -> np.ndarray:
        return np.asarray(self.attrs["rand_vec"], dtype=np.float64)

    @property
    def succeeded(self) -> bool:
        return bool(self.attrs["success"])

    def validate(self) -> None:
        """Raise EpisodeError when shapes, dtypes or values break the schema."""
        where = str(self.path) if self.path else "episode"
        t = self.num_steps
        if t == 0:
            raise EpisodeError(f"{where}: episode has no steps")
        for name, array in (("observations/state", self.state), ("observations/qpos", self.qpos),
                            ("observations/qvel", self.qvel), ("reward", self.reward),
                            ("success", self.success), ("sim_state", self.sim_state)):
            if array.shape[0] != t:
                raise EpisodeError(f"{where}: /{name} has {array.shape[0]} steps, /action has {t}")
        for camera, frames in self.images.items():
            if frames.shape[0] != t or frames.ndim != 4 or frames.shape[-1] != 3:
                raise EpisodeError(f"{where}: /observations/images/{camera} has shape {frames.shape}, expected ({t}, H, W, 3)")
        if self.state.shape[1:] != (39,):
            raise EpisodeError(f"{where}: /observations/state has shape {self.state.shape}, expected (T, 39)")
        if self.action.shape[1:] != (4,):
            raise EpisodeError(f"{where}: /action has shape {self.action.shape}, expected (T, 4)")
        for name, array in (("observations/state", self.state), ("action", self.action)):
            if not np.all(np.isfinite(array)):
                raise EpisodeError(f"{where}: /{name} contains NaN or infinite values")
        if (self.intervention is None) != (self.policy_action is None):
            raise EpisodeError(f"{where}: a correction episode needs both /intervention and /policy_action")
        if self.intervention is not None:
            if self.intervention.shape != (t,):
                raise EpisodeError(f"{where}: /intervention has shape {self.intervention.shape}, expected ({t},)")
            if self.policy_action.shape != (t, 4):
                raise EpisodeError(f"{where}: /policy_action has shape {self.policy_action.shape}, expected ({t}, 4)")
            if not np.all(np.isfinite(self.policy_action)):
                raise EpisodeError(f"{where}: /policy_action contains NaN or infinite values")
        if int(self.attrs.get("num_steps", t)) != t:
            raise EpisodeError(f"{where}: attr num_steps={self.attrs['num_steps']} but the file holds {t} steps")


# --------------------------------------------------------------------- write
def write_episode(path: str | os.PathLike, episode: Episode) -> Path:
    """Write atomically: a hidden temporary file, flushed and fsynced, then renamed to ``path``.

    On any failure (disk full, unwritable folder) the temporary file is
    removed and nothing under the final name is touched.
    """
    path = Path(path)
    episode.validate()
    # The HDF5 image is built in memory and written with plain file I/O: h5py
    # crashes the process when the disk fills up under it, while os.write
    # raises a clean OSError that we can report.
    image = _hdf5_image(episode)
    try:
        write_bytes(path, image)
    except OSError as error:
        raise EpisodeError(f"cannot write {path}: {error.strerror or error} "
                           "(free some disk space or choose a writable --out; earlier episodes are intact)"
                           ) from error
    return path


IMAGE_DEFLATE_LEVEL = 1


def _write_frames(group, name: str, frames: np.ndarray) -> None:
    """One frame per chunk, deflate-compressed (readable by any HDF5 reader).

    The chunks are compressed with zlib in a thread pool and written with
    ``write_direct_chunk``: zlib releases the GIL, so this uses every core
    and does not stall a control loop running in another thread, whereas
    h5py's own filter pipeline runs one chunk at a time under the GIL.
    """
    import zlib
    from concurrent.futures import ThreadPoolExecutor

    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    dataset = group.create_dataset(name, shape=frames.shape, dtype=np.uint8, chunks=(1, *frames.shape[1:]),
                                   compression="gzip", compression_opts=IMAGE_DEFLATE_LEVEL)
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        compressed = pool.map(lambda frame: zlib.compress(frame, IMAGE_DEFLATE_LEVEL), frames)
        for t, chunk in enumerate(compressed):
            dataset.id.write_direct_chunk((t, 0, 0, 0), chunk)


def _hdf5_image(episode: Episode) -> bytes:
    import h5py

    with h5py.File(f"in-memory-{id(episode)}.hdf5", "w", driver="core", backing_store=False) as f:
        for key, value in episode.attrs.items():
            f.attrs[key] = _attr_value(value)
        obs = f.create_group("observations")
        obs.create_dataset("state", data=episode.state)
        obs.create_dataset("qpos", data=episode.qpos)
        obs.create_dataset("qvel", data=episode.qvel)
        if episode.images:
            images = obs.create_group("images")
            for camera, frames in episode.images.items():
                _write_frames(images, camera, frames)
        f.create_dataset("action", data=episode.action.astype(np.float32, copy=False))
        f.create_dataset("reward", data=episode.reward)
        f.create_dataset("success", data=episode.success.astype(bool, copy=False))
        f.create_dataset("sim_state", data=episode.sim_state)
        if episode.intervention is not None:
            f.create_dataset("intervention", data=episode.intervention.astype(bool, copy=False))
            f.create_dataset("policy_action", data=episode.policy_action.astype(np.float32, copy=False))
        f.flush()
        return f.id.get_file_image()


def _attr_value(value):
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (list, tuple)):
        return np.asarray(value)
    if value is None:
        return ""
    return value


# --------------------------------------------------------------------- read
def read_attrs(path: str | os.PathLike) -> dict:
    """Only the attrs (fast: no datasets are read)."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            attrs = _decode_attrs(f, path)
    except EpisodeError:
        raise
    except Exception as error:  # h5py raises OSError/KeyError/ValueError for damaged files
        raise EpisodeError(f"{path}: not a readable episode file ({_short(error)})") from error
    return attrs


def read_episode(path: str | os.PathLike, *, images: bool | list[str] = False) -> Episode:
    """Read and validate one episode. ``images``: False, True (all) or a list of cameras."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            attrs = _decode_attrs(f, path)
            for name in _REQUIRED_DATASETS:
                if name not in f:
                    raise EpisodeError(f"{path}: missing dataset /{name}")
            loaded = {}
            if images and "observations/images" in f:
                group = f["observations/images"]
                wanted = list(group.keys()) if images is True else list(images)
                for camera in wanted:
                    if camera not in group:
                        raise EpisodeError(f"{path}: no images for camera {camera!r} (has {', '.join(group.keys())})")
                    loaded[camera] = group[camera][()]
            episode = Episode(
                attrs=attrs,
                state=f["observations/state"][()],
                qpos=f["observations/qpos"][()],
                qvel=f["observations/qvel"][()],
                action=f["action"][()],
                reward=f["reward"][()],
                success=f["success"][()].astype(bool),
                sim_state=f["sim_state"][()],
                images=loaded,
                path=path,
                intervention=f["intervention"][()].astype(bool) if "intervention" in f else None,
                policy_action=f["policy_action"][()] if "policy_action" in f else None,
            )
    except EpisodeError:
        raise
    except Exception as error:
        raise EpisodeError(f"{path}: not a readable episode file ({_short(error)})") from error
    episode.validate()
    return episode


def read_intervention(path: str | os.PathLike) -> np.ndarray | None:
    """Only /intervention (T,) bool of a correction episode; None for a demo (or a schema-1 file)."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            return f["intervention"][()].astype(bool) if "intervention" in f else None
    except Exception as error:
        raise EpisodeError(f"{path}: not a readable episode file ({_short(error)})") from error


def takeovers(intervention: np.ndarray) -> int:
    """How many times the person took over: steps where /intervention goes from False (or the start) to True."""
    mine = np.asarray(intervention, dtype=bool)
    return int(mine[:1].sum() + (mine[1:] & ~mine[:-1]).sum())


def image_cameras(path: str | os.PathLike) -> list[str]:
    import h5py

    with h5py.File(path, "r") as f:
        return list(f["observations/images"].keys()) if "observations/images" in f else []


def _decode_attrs(f, path: Path) -> dict:
    attrs = {}
    for key, value in f.attrs.items():
        if isinstance(value, bytes):
            value = value.decode()
        if isinstance(value, np.generic):
            value = value.item()
        attrs[key] = value
    schema = attrs.get("schema")
    if schema is None:
        raise EpisodeError(f"{path}: no 'schema' attribute: not a teleop episode file")
    if schema not in READABLE_SCHEMAS:
        raise EpisodeError(f"{path}: schema {schema!r} is not supported (this toolkit reads "
                           f"{' and '.join(repr(s) for s in READABLE_SCHEMAS)}); "
                           "convert the file or use the toolkit version that wrote it")
    missing = [k for k in REQUIRED_ATTRS if k not in attrs]
    if missing:
        raise EpisodeError(f"{path}: missing attributes {', '.join(missing)}")
    try:
        attrs["versions"] = json.loads(attrs["versions"]) if isinstance(attrs["versions"], str) else attrs["versions"]
    except json.JSONDecodeError as error:
        raise EpisodeError(f"{path}: attribute 'versions' is not JSON") from error
    attrs["success"] = bool(attrs["success"])
    return attrs


def _short(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


# --------------------------------------------------------------------- folders
def episode_files(folder: str | os.PathLike) -> list[Path]:
    """Final episode files of a folder, in index order (temporary files are never listed)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ToolkitError(f"{folder} is not a folder of episodes: pass the folder `teleop record --out` wrote")
    return sorted((p for p in folder.iterdir() if FILE_PATTERN.match(p.name)),
                  key=lambda p: int(FILE_PATTERN.match(p.name).group(1)))


def next_index(folder: str | os.PathLike) -> int:
    files = episode_files(folder)
    return int(FILE_PATTERN.match(files[-1].name).group(1)) + 1 if files else 0


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete temporary files a killed writer left behind; returns what was removed."""
    removed = []
    for p in Path(folder).glob(f".episode_*{TMP_SUFFIX}"):
        try:
            p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def scan_folder(folders, *, attrs_only: bool = True):
    """Read every episode of one or more folders, skipping damaged files.

    Returns (items, problems): items are attr dicts (with ``path``) or Episodes;
    problems are one-line messages naming each unreadable file.
    """
    if isinstance(folders, (str, os.PathLike)):
        folders = [folders]
    items, problems = [], []
    for folder in folders:
        for path in episode_files(folder):
            try:
                if attrs_only:
                    attrs = read_attrs(path)
                    attrs["path"] = path
                    items.append(attrs)
                else:
                    items.append(read_episode(path))
            except EpisodeError as error:
                problems.append(str(error))
    return items, problems

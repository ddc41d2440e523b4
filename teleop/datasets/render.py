"""``teleop render``: camera images for episodes recorded without them, from their recorded MuJoCo states.

A live human recording stores the MuJoCo integration state before every action (``/sim_state``) and
no images. For each step t this restores ``/sim_state[t]`` in a TaskEnv of the episode's task, reset
with the episode's ``rand_vec`` first (some tasks move bodies and sites of the model in their reset),
recomputes everything that depends on it with ``mj_forward`` (what MetaWorld's ``step`` and the
toolkit's reset do before the recorder renders), and renders each camera with ``TaskEnv.render``.
The images are therefore bit for bit those ``teleop record --cameras`` would have stored.

- Every file is checked before anything is written (readable, the images it already holds, the
  cameras exist in its scene); a problem is one ``ToolkitError`` and nothing on disk has changed.
- Each file is rewritten whole through :func:`teleop.episode.write_episode` (hidden temporary name,
  fsync, rename): a kill leaves every episode either as it was or complete with its images. Every
  other dataset and attribute is carried over unchanged; only the ``cameras`` attribute gains the
  new cameras.
- A file that already holds every requested camera at the requested size is skipped, so running the
  command again after a kill finishes the rest. A camera held at another size is refused unless
  ``force`` (which renders it again).
- Files are rendered in ``jobs`` worker processes (spawned), each with its own TaskEnv and GL
  context; the workers check the cameras before any file is given out, so the main process never
  imports MetaWorld. With one job everything runs in the calling process.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from teleop.episode import FILE_PATTERN, EpisodeError, episode_files, read_episode, write_episode
from teleop.errors import ToolkitError

MIN_SIZE = 16
MAX_SIZE = 1024
MAX_DEFAULT_JOBS = 4
# Every object a teleop episode file may hold; a file with anything else is refused, since rewriting
# it through teleop.episode would drop it.
_KNOWN_OBJECTS = {"observations", "observations/state", "observations/qpos", "observations/qvel",
                  "observations/images", "action", "reward", "success", "sim_state", "intervention",
                  "policy_action"}


@dataclass
class RenderResult:
    cameras: tuple[str, ...]
    size: int
    rendered: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0
    jobs: int = 1


@dataclass
class _Job:
    path: Path
    task: str
    cameras: tuple[str, ...]  # the cameras to (re)render in this file
    steps: int


def default_jobs() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_JOBS, cpus))


def parse_cameras(text: str | None) -> tuple[str, ...]:
    cameras = tuple(dict.fromkeys(c.strip() for c in (text or "").split(",") if c.strip()))
    if not cameras:
        raise ToolkitError("--cameras needs at least one camera, e.g. --cameras corner2,gripperPOV")
    return cameras


def check_size(size: int) -> int:
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ToolkitError(f"--image-size {size}: must be in {MIN_SIZE}..{MAX_SIZE} pixels")
    return int(size)


# --------------------------------------------------------------------- plan (reads only)
def _dataset_files(datasets) -> list[Path]:
    files: list[Path] = []
    for item in datasets:
        path = Path(item)
        if path.is_file() and FILE_PATTERN.match(path.name):
            found = [path]
        elif path.is_file():
            raise ToolkitError(f"{path} is not an episode file (episode_NNNNNN.hdf5) nor a folder of them")
        else:
            found = episode_files(path)  # a ToolkitError when it is not a folder
            if not found:
                raise ToolkitError(f"{path} holds no episode files (episode_NNNNNN.hdf5): nothing to render")
        files.extend(found)
    unique = list(dict.fromkeys(p.resolve() for p in files))
    return unique


def _file_contents(path: Path) -> dict[str, tuple]:
    """camera -> shape of the images the file holds; refuses objects teleop.episode does not know."""
    import h5py

    names: list[str] = []
    try:
        with h5py.File(path, "r") as f:
            f.visit(names.append)
            group = f.get("observations/images")
            shapes = {camera: group[camera].shape for camera in group} if group is not None else {}
    except Exception as error:  # damaged file: read_episode already named it, this is a second line of defence
        raise EpisodeError(f"{path}: not a readable episode file ({error})") from error
    unknown = [n for n in names if n not in _KNOWN_OBJECTS and not n.startswith("observations/images/")]
    if unknown:
        raise EpisodeError(f"{path}: holds /{', /'.join(unknown)}, which is not part of a teleop episode file; "
                           "teleop render rewrites the file and would not keep it")
    return shapes


def plan(datasets, cameras, size: int, *, force: bool = False) -> tuple[list[_Job], list[Path], dict[str, set]]:
    """Check every file and decide what to render: (jobs, skipped files, task -> cameras used).

    Reads only; raises ToolkitError (naming the file) on the first problem."""
    jobs, skipped, tasks = [], [], {}
    for path in _dataset_files(datasets):
        episode = read_episode(path)  # validates attrs and every per-step dataset
        held = _file_contents(path)
        missing = []
        for camera in cameras:
            shape = held.get(camera)
            if shape is None:
                missing.append(camera)
            elif tuple(shape[1:3]) != (size, size):
                if not force:
                    raise ToolkitError(f"{path}: camera {camera} already has {shape[2]}x{shape[1]} images, not "
                                       f"{size}x{size}; pass --force to render them again at {size}x{size}")
                missing.append(camera)
            elif force:
                missing.append(camera)
        if missing:
            jobs.append(_Job(path, episode.task, tuple(missing), episode.num_steps))
            tasks.setdefault(episode.task, set()).update(missing)
        else:
            skipped.append(path)
    return jobs, skipped, tasks


# --------------------------------------------------------------------- rendering
def render_frames(env, episode, cameras, size: int) -> dict[str, np.ndarray]:
    """camera -> (T, size, size, 3) uint8: each step's recorded MuJoCo state, rendered."""
    import mujoco

    if episode.sim_state.shape[1] != env.state_size:
        raise EpisodeError(f"{episode.path}: /sim_state has {episode.sim_state.shape[1]} entries per step, this "
                           f"MuJoCo's {episode.task} has {env.state_size}: render it with the MuJoCo that recorded it")
    # The reset rebuilds what the task's reset changes in the model (bodies, sites); the states then
    # replace everything in mjData that the simulation integrates.
    env.reset(rand_vec=episode.rand_vec)
    states = np.ascontiguousarray(episode.sim_state, dtype=np.float64)
    frames = {c: np.empty((episode.num_steps, size, size, 3), dtype=np.uint8) for c in cameras}
    which = mujoco.mjtState.mjSTATE_INTEGRATION
    for t in range(episode.num_steps):
        mujoco.mj_setState(env.model, env.data, states[t], which)
        # Positions of bodies, geoms, cameras and lights follow from the state only after a forward
        # pass; the recorder renders right after one (the reset's, or the one ending MetaWorld's step).
        mujoco.mj_forward(env.model, env.data)
        for camera in cameras:
            frames[camera][t] = env.render(camera, size)
    return frames


def render_file(path: Path, cameras, size: int, env) -> int:
    """Add ``cameras`` at ``size`` to one episode file, atomically; returns the frames rendered."""
    import h5py

    episode = read_episode(path, images=True)
    with h5py.File(path, "r") as f:
        # The attributes exactly as stored (types included), not as read_episode decodes them.
        attrs = {key: f.attrs[key] for key in f.attrs}
    frames = render_frames(env, episode, cameras, size)
    images = {**episode.images, **frames}
    recorded = attrs.get("cameras", "")
    recorded = recorded.decode() if isinstance(recorded, bytes) else str(recorded)
    order = [c for c in recorded.split(",") if c in images]
    attrs["cameras"] = ",".join(dict.fromkeys([*order, *sorted(episode.images), *cameras]))
    write_episode(path, replace(episode, attrs=attrs, images=images))
    return len(cameras) * episode.num_steps


_ENVS: dict = {}  # task -> TaskEnv, one per task per process (a MetaWorld environment takes ~0.4 s to make)


def _env_for(task: str):
    from teleop.env import TaskEnv

    if task not in _ENVS:
        _ENVS[task] = TaskEnv(task)
    return _ENVS[task]


def _close_envs() -> None:
    while _ENVS:
        _ENVS.popitem()[1].close()


def _worker_start(tasks: dict[str, set]) -> None:
    """A worker makes its environments and checks the cameras before any file is given out."""
    try:
        _check_cameras(tasks)
    except ToolkitError:
        raise
    except Exception as error:  # noqa: BLE001 - handed to the main process as one line
        raise ToolkitError(f"cannot make the {', '.join(sorted(tasks))} environment in a worker: "
                           f"{type(error).__name__}: {error}") from None


def _worker_render(path: Path, task: str, cameras, size: int) -> int:
    try:
        return render_file(path, cameras, size, _env_for(task))
    except ToolkitError:
        raise
    except Exception as error:  # noqa: BLE001 - handed to the main process as one line
        raise ToolkitError(f"{path}: {type(error).__name__}: {error}") from None


def _check_cameras(tasks: dict[str, set]) -> None:
    for task, cameras in tasks.items():
        env = _env_for(task)
        for camera in sorted(cameras):
            env.check_camera(camera)


def render_datasets(datasets, cameras, size: int, *, jobs: int | None = None, force: bool = False,
                    progress: bool = True) -> RenderResult:
    """Render ``cameras`` at ``size`` x ``size`` into every episode of ``datasets`` that lacks them."""
    cameras = tuple(cameras)
    if not cameras:
        raise ToolkitError("--cameras needs at least one camera, e.g. --cameras corner2,gripperPOV")
    size = check_size(size)
    jobs = default_jobs() if jobs is None else int(jobs)
    if jobs < 1:
        raise ToolkitError(f"--jobs must be at least 1, got {jobs}")
    work, skipped, tasks = plan(datasets, cameras, size, force=force)
    result = RenderResult(cameras, size, skipped=skipped, jobs=min(jobs, max(1, len(work))))
    locks = _lock_folders({job.path.parent for job in work})
    started = time.perf_counter()
    pool = None
    try:
        if result.jobs > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # One thread per worker for BLAS/OpenMP: the workers already fill the cores.
            for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
                os.environ.setdefault(name, "1")
            pool = ProcessPoolExecutor(result.jobs, mp_context=multiprocessing.get_context("spawn"))
            # Every worker makes its environments and checks the cameras (this process never imports
            # MetaWorld); an unknown camera is refused before any file is given out.
            _start_workers(pool, tasks, result.jobs)
        else:
            _check_cameras(tasks)  # an unknown camera: nothing has been written yet
        bar = _bar(len(work), cameras, size, progress)
        try:
            if pool is None:
                for job in work:
                    result.frames += render_file(job.path, job.cameras, size, _env_for(job.task))
                    result.rendered.append(job.path)
                    _advance(bar, result)
            else:
                _render_in_workers(pool, work, size, result, bar)
        finally:
            bar.close()
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        _close_envs()
        for fd in locks:
            os.close(fd)
    result.seconds = time.perf_counter() - started
    return result


def _start_workers(pool, tasks: dict[str, set], jobs: int) -> None:
    from concurrent.futures.process import BrokenProcessPool

    try:
        for started in [pool.submit(_worker_start, tasks) for _ in range(jobs)]:
            started.result()
    except BrokenProcessPool as error:
        raise ToolkitError(f"a render worker died while starting ({error}); try --jobs 1") from None


def _render_in_workers(pool, work: list[_Job], size: int, result: RenderResult, bar) -> None:
    from concurrent.futures import as_completed
    from concurrent.futures.process import BrokenProcessPool

    futures = {pool.submit(_worker_render, job.path, job.task, job.cameras, size): job for job in work}
    try:
        for future in as_completed(futures):
            result.frames += future.result()
            result.rendered.append(futures[future].path)
            _advance(bar, result)
    except (ToolkitError, BrokenProcessPool) as error:
        if isinstance(error, BrokenProcessPool):
            error = ToolkitError(f"a render worker died ({error})")
        raise ToolkitError(f"{error} ({len(result.rendered)} episodes rendered before it are complete; "
                           "run the command again to render the rest)") from None


def _lock_folders(folders) -> list[int]:
    """Hold an flock on each folder whose files are rewritten: a second ``teleop render`` on it is refused.

    The lock is on the folder itself, so nothing is created in it."""
    import fcntl

    fds = []
    try:
        for folder in sorted(folders):
            fd = os.open(folder, os.O_RDONLY)
            fds.append(fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise ToolkitError(f"another teleop render is writing into {folder}: wait for it to finish") from None
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return fds


class _NoBar:
    def update(self, n): ...
    def set_postfix(self, *a, **k): ...
    def close(self): ...


def _bar(total: int, cameras, size: int, enabled: bool):
    if not enabled or total == 0:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=f"rendering {','.join(cameras)} {size}x{size}", unit="ep", file=sys.stderr,
                dynamic_ncols=True)


def _advance(bar, result: RenderResult) -> None:
    bar.update(1)
    bar.set_postfix(frames=result.frames, refresh=False)

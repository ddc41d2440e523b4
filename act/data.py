"""Episodes -> training samples for ACT.

A sample is (episode, t): the policy's input at step t (the 39-float state by default, or slices
of it, optionally followed by the robot's joint positions) and the action chunk [t, t+K), padded
past the episode's end with a pad mask so the loss ignores steps that never happened.

Correction episodes (HG-DAgger, `teleop correct`: the policy drives, a person takes over when it goes
wrong; their files carry /intervention) are labels only where the person drove: a sample (episode, t)
exists only where intervention[t] is True, and the rows of its chunk the policy drove are masked like
the padding past the end (`action_pad` True). Ordinary demos keep every step. Each episode has a loss
weight (`EpisodeData.weight`, act-train's --correction-weight for corrections); when some weight is
not 1 the batches carry it as "weight" (B,), and ACTPolicy.forward takes a weighted mean of the L1.
Sirius-style, the policy's own steps of a correction can be labels too, with their own weight
(`EpisodeData.policy_weight`, --policy-weight, 0 by default: HG-DAgger), less the `drop_before` steps
before each takeover (the policy's mistakes that made the person take over; --drop-before-takeover).

Low-dimensional arrays are read once into memory. Images stay on disk and are read per sample
through one h5py handle per process (DataLoader workers each open their own: an h5py handle must
not cross a fork). The split into training and validation is by episode, so no validation step
comes from an episode the policy trained on.

Nothing here imports torch: a bad dataset is refused before the heavy imports start.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from teleop.episode import EpisodeError, episode_files, read_episode
from teleop.errors import ToolkitError
from teleop.spawn import SpawnDiversity, spawn_diversity


class DataError(ToolkitError):
    """A dataset that cannot be trained on; the message names the problem and the fix."""


class SingleSpawnError(DataError):
    """Every training episode starts from the same object position."""


# --------------------------------------------------------------------------------------------
# What the policy sees of an episode's observation
# --------------------------------------------------------------------------------------------

# MetaWorld's 39-float observation: current-frame hand position, finger opening, first object, goal.
HAND, FINGER, OBJECT, GOAL = slice(0, 3), 3, slice(4, 7), slice(36, 39)
# The robot's own part of it (hand position and finger opening, this frame 0:4 and the previous one 18:22)
# and the goal 36:39: everything but the objects' poses (4:18 and 22:36).
VISION_SLICES = ((0, 4), (18, 22), (36, 39))
OBSERVATION_SETS = ("state", "vision")

@dataclass(frozen=True)
class StateSpec:
    """Which columns of /observations/state feed the policy, and whether qpos follows them.

    The policy at run time applies the same spec to the environment's observation, so it is stored
    in the checkpoint (`to_dict`).
    """

    slices: tuple[tuple[int, int], ...] = ((0, 39),)
    qpos: bool = False
    relative: bool = False
    """Append hand->object, object->goal and hand->goal vectors (9 floats, from MetaWorld's current-frame
    hand 0:3, first object 4:7 and goal 36:39): what the expert's actions are proportional to, so the
    network need not learn a subtraction from a handful of spawns."""
    fine: float = 0.0
    """With ``relative``, also append tanh(v / fine) of those 9 floats (metres; 0: not): the same vectors at
    the centimetre scale where a grasp or a reach is decided, which a network fed vectors normalized by
    their spread over the whole workspace resolves coarsely."""

    @classmethod
    def vision(cls) -> "StateSpec":
        """``--observations vision``: what a real robot knows without the object's pose: its own hand position
        and finger opening (this frame and the previous), its 9 joint positions, and the task's goal (a task
        parameter, like an instruction). The objects are seen in the camera images only."""
        return cls(slices=VISION_SLICES, qpos=True, relative=False)

    @property
    def sees_objects(self) -> bool:
        """Whether any column of an object's pose (4:18, 22:36) or a vector built from it reaches the policy."""
        object_columns = set(range(4, 18)) | set(range(22, 36))
        return self.relative or bool(object_columns & set(self.columns().tolist()))

    @classmethod
    def parse(cls, text: str, *, qpos: bool = False, relative: bool = False, fine: float = 0.0) -> "StateSpec":
        """'' -> all 39 floats; '0:7,36:39' -> those half-open column ranges, in that order."""
        fine = fine if relative else 0.0
        if not text.strip():
            return cls(qpos=qpos, relative=relative, fine=fine)
        slices = []
        for part in text.split(","):
            try:
                start, stop = (int(v) for v in part.split(":"))
            except ValueError:
                raise DataError(f"--state-slices {text!r}: write comma-separated START:STOP ranges "
                                f"of the 39 state columns, e.g. 0:7,36:39") from None
            if not 0 <= start < stop <= 39:
                raise DataError(f"--state-slices range {part!r} must satisfy 0 <= START < STOP <= 39")
            slices.append((start, stop))
        return cls(slices=tuple(slices), qpos=qpos, relative=relative, fine=fine)

    def columns(self) -> np.ndarray:
        return np.concatenate([np.arange(a, b) for a, b in self.slices])

    def state(self, obs: np.ndarray, qpos: np.ndarray | None = None) -> np.ndarray:
        """obs (..., 39) [+ qpos (..., J)] -> policy input (..., S) float32."""
        parts = [obs[..., self.columns()]]
        if self.relative:
            hand, obj, goal = obs[..., HAND], obs[..., OBJECT], obs[..., GOAL]
            vectors = [obj - hand, goal - obj, goal - hand]
            parts += vectors
            if self.fine:
                parts += [np.tanh(v / self.fine) for v in vectors]
        if self.qpos:
            if qpos is None:
                raise ValueError("this policy sees the robot's joint positions (--qpos or --observations "
                                 "vision): pass them")
            parts.append(qpos)
        return np.concatenate(parts, axis=-1).astype(np.float32)

    def to_dict(self) -> dict:
        spec = {"slices": [list(s) for s in self.slices], "qpos": self.qpos, "relative": self.relative}
        return {**spec, "fine": self.fine} if self.fine else spec  # without it: what older versions wrote

    @classmethod
    def from_dict(cls, data: dict) -> "StateSpec":
        return cls(slices=tuple(tuple(int(v) for v in s) for s in data["slices"]),
                   qpos=bool(data["qpos"]), relative=bool(data.get("relative", False)),
                   fine=float(data.get("fine", 0.0)))


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------

@dataclass
class EpisodeData:
    """The parts of one episode file that training needs, in memory (images stay on disk)."""

    path: Path
    seed: int
    rand_vec: np.ndarray  # (D,)
    object_init_pos: np.ndarray  # (3,)
    state: np.ndarray  # (T, S) float32, already through the StateSpec
    action: np.ndarray  # (T, A) float32
    image_shapes: dict[str, tuple[int, int]] = field(default_factory=dict)  # camera -> (H, W)
    frames: Optional[np.ndarray] = None  # (T,) the file's step of each row, when idle steps were dropped
    recorded_steps: int = 0  # steps in the file, idle ones included (0: num_steps)
    intervention: Optional[np.ndarray] = None  # (T,) bool per row, correction episodes only: a person drove
    takeovers: Optional[np.ndarray] = None  # file steps where intervention goes False -> True (corrections)
    weight: float = 1.0  # loss weight of this episode's samples relative to a demo's (--correction-weight)
    policy_weight: float = 0.0  # corrections: loss weight of the policy-driven rows (0: not labels)
    drop_before: int = 0  # corrections: policy rows among the N recorded steps before a takeover are no labels
    spawn_strategy: str = ""  # how the recorder drew the spawn (teleop.spawn.STRATEGIES; "" if not recorded)

    def __post_init__(self) -> None:
        self.recorded_steps = int(self.recorded_steps or self.num_steps)

    @property
    def num_steps(self) -> int:
        return int(self.action.shape[0])

    @property
    def is_correction(self) -> bool:
        return self.intervention is not None

    @property
    def person_steps(self) -> int:
        """Rows driven by a person, the rows that are labels: every row of a demo."""
        return self.num_steps if self.intervention is None else int(self.intervention.sum())

    def label_rows(self) -> np.ndarray:
        """(T,) bool: the rows whose action is a label (all of a demo's; the person-driven ones of a correction,
        and with a policy weight its policy-driven ones but those just before a takeover)."""
        return self.row_weights() > 0

    def row_weights(self) -> np.ndarray:
        """(T,) float32: each row's loss weight as a label (0: not a label)."""
        if self.intervention is None:
            return np.full(self.num_steps, self.weight, np.float32)
        person = self.intervention.astype(bool)
        policy = ~person & ~self.before_takeover(self.drop_before)
        return np.where(person, self.weight, np.where(policy, self.policy_weight, 0.0)).astype(np.float32)

    def before_takeover(self, n: int) -> np.ndarray:
        """(T,) bool: policy-driven rows among the n recorded steps just before a takeover (none for a demo)."""
        near = np.zeros(self.num_steps, bool)
        if self.intervention is None or n <= 0 or self.takeovers is None:
            return near
        steps = self.frames if self.frames is not None else np.arange(self.num_steps)
        for takeover in self.takeovers:
            near |= (steps >= takeover - n) & (steps < takeover)
        return near & ~self.intervention


def takeover_steps(intervention: np.ndarray) -> np.ndarray:
    """The steps t where a person takes over: intervention[t - 1] False, intervention[t] True."""
    intervention = np.asarray(intervention, bool)
    return np.flatnonzero(intervention[1:] & ~intervention[:-1]) + 1


@dataclass
class Dataset:
    task: str
    episodes: list[EpisodeData]
    spawn_low: np.ndarray
    spawn_high: np.ndarray
    spec: StateSpec
    cameras: tuple[str, ...]
    image_size: tuple[int, int] | None
    skipped: list[str]  # one line per damaged file left out
    idle_dropped: int = 0  # steps left out by drop_idle
    person_rows: int = 0  # rows a person drove (a person's demos, the taken-over rows of their corrections)
    scripted_rows: int = 0  # rows the scripted expert drove (its demos, and its corrections' taken-over rows)

    @property
    def recorded_by_person(self) -> bool:
        """Most of the driven rows, the labels, come from a person (any device but the scripted expert).

        This picks act-train's recipe (CVAE, dropout, the tie-break inference): a few corrections on top of
        scripted demos leave it the scripted expert's (BENCHMARKS.md, "Corrections on the scripted expert's
        demos")."""
        return self.person_rows > 0 and self.person_rows >= self.scripted_rows

    @property
    def longest_recorded(self) -> int:
        """The longest episode in steps as recorded (idle steps included): its pace sets the horizon."""
        return max(e.recorded_steps for e in self.episodes)

    def fingerprint(self) -> dict:
        """What the checkpoint records about the data: enough to tell whether a resumed run reads
        the same episodes, and to rebuild every spawn. num_steps counts the steps trained on (idle
        steps left out), recorded_steps the steps in the file (what the evaluation horizon covers);
        correction tells a correction episode, person_steps counts its rows a person drove (the
        labels; num_steps for a demo)."""
        return {
            "task": self.task,
            "spawn_low": self.spawn_low.tolist(),
            "spawn_high": self.spawn_high.tolist(),
            "state_spec": self.spec.to_dict(),
            "cameras": list(self.cameras),
            "episodes": [{"file": e.path.name, "seed": e.seed, "num_steps": e.num_steps,
                          "recorded_steps": e.recorded_steps, "rand_vec": e.rand_vec.tolist(),
                          "object_init_pos": e.object_init_pos.tolist(), "correction": e.is_correction,
                          "person_steps": e.person_steps, "spawn_strategy": e.spawn_strategy}
                         for e in self.episodes],
        }


# A step is idle when its commanded translation is below IDLE_ACTION (MetaWorld: 1.0 = 1 cm a step)
# and nothing moved until the next observation: hand and object under IDLE_MOVE_M, fingers under
# IDLE_FINGER. Closing the gripper on an object is not idle (the fingers move).
IDLE_ACTION, IDLE_MOVE_M, IDLE_FINGER = 0.02, 2e-4, 5e-4


def idle_steps(state: np.ndarray, action: np.ndarray) -> np.ndarray:
    """(T,) bool: the steps of an episode (raw 39-float MetaWorld states) where the operator paused."""
    hand, finger, obj = state[:, HAND], state[:, FINGER], state[:, OBJECT]
    still = ((np.linalg.norm(np.diff(hand, axis=0), axis=1) < IDLE_MOVE_M)
             & (np.linalg.norm(np.diff(obj, axis=0), axis=1) < IDLE_MOVE_M)
             & (np.abs(np.diff(finger)) < IDLE_FINGER))
    idle = np.zeros(len(state), bool)
    idle[:-1] = still & (np.abs(action[:-1, :3]).max(axis=1) < IDLE_ACTION)
    return idle


# Devices that never pause: their episodes keep every step when drop_idle is None ("auto").
SCRIPTED_DEVICES = ("scripted",)


def load_dataset(folders, *, spec: StateSpec = StateSpec(), cameras: tuple[str, ...] = (),
                 strict: bool = False, drop_idle: bool | None = False) -> Dataset:
    """Read every episode of the folders. Refuses (DataError) missing or empty folders, mixed tasks
    or observation layouts, NaN; a damaged file is skipped with a warning, or refused when strict.

    drop_idle: leave out the steps where the operator paused (:func:`idle_steps`), so that chunks
    run straight from the state before a pause to the motion after it. None: only in episodes
    recorded by a person (any device but the scripted expert, whose episodes are kept whole). A
    correction episode's /intervention is subset with the same steps, so it stays aligned with the rows;
    its takeovers are kept as file steps (the rows' `frames` map back to them)."""
    if isinstance(folders, (str, os.PathLike)):
        folders = [folders]
    paths: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise DataError(f"--data {folder}: no such folder; pass folders written by `teleop record --out`")
        found = episode_files(folder)
        if not found:
            raise DataError(f"--data {folder}: no episode_*.hdf5 files in it; record some with "
                            f"`teleop record --out {folder}`")
        paths.extend(found)

    episodes, skipped = [], []
    idle_dropped = 0
    driven = {True: 0, False: 0}  # rows driven by a person / by the scripted expert
    task = layout = None
    spawn_low = spawn_high = None
    for path in paths:
        try:
            episode = read_episode(path)
        except EpisodeError as error:
            # The episode module reports NaN/inf through the same error as a damaged file, but a
            # NaN is bad data, not a broken copy: skipping it silently would hide a recording bug.
            if "NaN" in str(error):
                raise DataError(f"{error}: remove that episode or re-record it") from None
            if strict:
                raise DataError(f"{error} (--strict: remove the file, or drop --strict to skip it)") from None
            skipped.append(str(error))
            continue
        if not np.all(np.isfinite(episode.qpos)) and spec.qpos:
            raise DataError(f"{path}: /observations/qpos contains NaN or infinite values; remove that "
                            f"episode or re-record it")
        if task is None:
            task = episode.task
        elif episode.task != task:
            raise DataError(f"{path} is a {episode.task} episode but {paths[0]} is {task}: "
                            f"train on one task at a time (separate the folders)")
        image_shapes = _image_shapes(path, cameras)
        this_layout = (episode.state.shape[1], episode.qpos.shape[1] if spec.qpos else 0,
                       tuple(sorted(image_shapes.items())))
        if layout is None:
            layout = this_layout
        elif this_layout != layout:
            raise DataError(f"{path} has observation layout (state, qpos, images) {this_layout} but "
                            f"the first episode has {layout}: every episode must be recorded the same way")
        if spawn_low is None:
            spawn_low, spawn_high = _spawn_box(episode.attrs, task)
        state = spec.state(episode.state, episode.qpos if spec.qpos else None)
        action, frames = episode.action.astype(np.float32), None
        intervention = takeovers = None
        if episode.intervention is not None:
            intervention = episode.intervention.astype(bool)
            takeovers = takeover_steps(intervention)
        person = episode.attrs.get("device") not in SCRIPTED_DEVICES
        if drop_idle or (drop_idle is None and person):
            keep = ~idle_steps(episode.state, episode.action)
            frames, state, action = np.flatnonzero(keep), state[keep], action[keep]
            if intervention is not None:
                intervention = intervention[keep]
            idle_dropped += int((~keep).sum())
        episodes.append(EpisodeData(
            path=path, seed=episode.seed, rand_vec=episode.rand_vec,
            object_init_pos=episode.object_init_pos, state=state, action=action,
            image_shapes=image_shapes, frames=frames, recorded_steps=episode.num_steps,
            intervention=intervention, takeovers=takeovers,
            spawn_strategy=str(episode.attrs.get("spawn_strategy", ""))))
        driven[person] += episodes[-1].person_steps
    for problem in skipped:
        warnings.warn(f"skipped a damaged episode: {problem} (pass --strict to stop instead)", stacklevel=2)
    if not episodes:
        raise DataError(f"no readable episodes in {', '.join(str(f) for f in folders)} "
                        f"({len(skipped)} damaged); re-record them")
    image_size = None
    if cameras:
        sizes = set(episodes[0].image_shapes.values())
        if len(sizes) != 1:
            raise DataError(f"cameras {list(cameras)} have different image sizes {sorted(sizes)}; "
                            f"record them at one --image-size")
        image_size = sizes.pop()
    return Dataset(task=task, episodes=episodes, spawn_low=spawn_low, spawn_high=spawn_high,
                   spec=spec, cameras=tuple(cameras), image_size=image_size, skipped=skipped,
                   idle_dropped=idle_dropped, person_rows=driven[True], scripted_rows=driven[False])


def check_labels(dataset: Dataset) -> None:
    """Warn about a folder whose correction episodes have no person-driven step (they add no labels);
    refuse (DataError) a dataset with no label at all (every episode such a correction)."""
    by_folder: dict[Path, list[EpisodeData]] = {}
    for e in dataset.episodes:
        if e.is_correction:
            by_folder.setdefault(e.path.parent, []).append(e)
    if by_folder and not any(e.label_rows().any() for e in dataset.episodes):
        raise DataError(f"no labels: the {len(dataset.episodes)} episodes of --data are all correction episodes "
                        f"in which a person never took over, and only person-driven steps of a correction "
                        f"are trained on; add demos or corrections where the person drove")
    for folder, episodes in by_folder.items():
        if not any(e.label_rows().any() for e in episodes):
            warnings.warn(f"--data {folder}: no step of its {len(episodes)} correction episodes was driven by a "
                          f"person, so they add no labels", stacklevel=2)


def normalization_data(episodes: list[EpisodeData], drop_before_takeover: int = 0
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(states (N, S), actions (N, A)) the normalization statistics are computed from: every row of
    the episodes, less, when drop_before_takeover = N > 0, the policy-driven rows among the N
    recorded steps just before each takeover of a correction episode."""
    keep = [~e.before_takeover(drop_before_takeover) for e in episodes]
    if all(k.all() for k in keep):
        # Nothing left out: the very arrays of a run without corrections (a copy through a mask
        # changes the memory layout, and with it the last bits of the statistics).
        return np.concatenate([e.state for e in episodes]), np.concatenate([e.action for e in episodes])
    return (np.concatenate([e.state[k] for e, k in zip(episodes, keep)]),
            np.concatenate([e.action[k] for e, k in zip(episodes, keep)]))


def _image_shapes(path: Path, cameras) -> dict[str, tuple[int, int]]:
    if not cameras:
        return {}
    import h5py

    with h5py.File(path, "r") as f:
        group = f.get("observations/images")
        have = list(group.keys()) if group is not None else []
        missing = [c for c in cameras if c not in have]
        if missing:
            raise DataError(f"{path} has no images for camera(s) {', '.join(missing)} (it has "
                            f"{', '.join(have) or 'none'}); add them with `teleop render {path.parent} --cameras "
                            f"{','.join(cameras)} --image-size 96`, or pass --cameras from those")
        return {c: tuple(int(v) for v in group[c].shape[1:3]) for c in cameras}


def _spawn_box(attrs: dict, task: str) -> tuple[np.ndarray, np.ndarray]:
    if "spawn_low" in attrs and "spawn_high" in attrs:
        return (np.asarray(attrs["spawn_low"], dtype=np.float64),
                np.asarray(attrs["spawn_high"], dtype=np.float64))
    from teleop.env import spawn_box  # older files did not store the box: ask the task

    return spawn_box(task)


# --------------------------------------------------------------------------------------------
# Split and the single-spawn guard
# --------------------------------------------------------------------------------------------

def split_episodes(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded split by episode: (train indices, val indices), each sorted. At least one training
    episode; at least one validation episode whenever val_fraction > 0 and n >= 2."""
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"--val-fraction {val_fraction}: must be in [0, 1)")
    n_val = 0 if val_fraction == 0 or n < 2 else min(n - 1, max(1, round(val_fraction * n)))
    order = np.random.default_rng([seed, 2]).permutation(n)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


def check_spawn_diversity(episodes: list[EpisodeData], dataset: Dataset, *,
                          allow_single_spawn: bool) -> SpawnDiversity:
    """Stop (SingleSpawnError) when the training episodes all share one spawn, unless allowed;
    warn when they have only a few."""
    diversity = spawn_diversity(np.stack([e.rand_vec for e in episodes]), dataset.spawn_low, dataset.spawn_high,
                                task=dataset.task)
    if diversity.degenerate and not allow_single_spawn:
        raise SingleSpawnError(
            f"all {diversity.episodes} training episodes start from the same spawn (every entry the task "
            f"randomizes is the same: {', '.join(diversity.names) or 'none'}): the policy would reach a good "
            f"loss and 0% success on random spawns. Re-record with fresh spawns (`teleop record`'s default), "
            f"or pass --allow-single-spawn for a deliberate experiment")
    if diversity.warning() is not None and (diversity.few or allow_single_spawn):
        warnings.warn(diversity.warning(), stacklevel=2)
    return diversity


# --------------------------------------------------------------------------------------------
# Samples and batches
# --------------------------------------------------------------------------------------------

class ChunkDataset:
    """Samples (episode, t) over a list of episodes, as normalized arrays.

    A demo gives a sample at each of its steps; a correction episode only at the steps a person
    drove, and the policy-driven rows of its chunks are masked like the padding past the end
    (`action_pad` True, action 0). When some episode's weight is not 1, batches carry "weight" (B,).

    `__getitems__(indices)` builds a whole batch with one gather (the DataLoader calls it when
    present); `__getitem__` is the one-sample case. Works without workers (state only: a batch is a
    few fancy-indexing calls) and with them (images: each worker opens its own file handles).
    """

    def __init__(self, episodes: list[EpisodeData], chunk_size: int, normalizer=None, *,
                 cameras: tuple[str, ...] = (), image_memory_gb: float | None = None):
        """image_memory_gb: decode every image the samples use once, into memory as uint8, if they fit in
        this many GB (DataError naming the sizes if not); None: read them from the files each batch."""
        self.episodes = episodes
        self.chunk_size = chunk_size
        self.cameras = tuple(cameras)
        lengths = np.array([e.num_steps for e in episodes])
        labels = [e.label_rows() for e in episodes]  # (T,) per episode: rows whose action is a label
        steps = [np.flatnonzero(label) for label in labels]  # a sample at each label row
        # Sample i is (episode_of[i], step_of[i]).
        self.episode_of = np.repeat(np.arange(len(episodes)), [len(s) for s in steps])  # (N,)
        self.step_of = np.concatenate(steps)  # (N,)
        state = np.concatenate([e.state if e.intervention is None else e.state[s]
                                for e, s in zip(episodes, steps)])  # (N, S)
        # Each episode's actions followed by K-1 zero rows, so chunk [t, t+K) is one slice even at
        # the end; the label mask says which of those rows the loss sees (real, and person-driven).
        k, a = chunk_size, episodes[0].action.shape[1]
        padded = [np.concatenate([e.action, np.zeros((k - 1, a), np.float32)]) for e in episodes]
        action = np.concatenate(padded)  # (R + E*(K-1), A), R rows in all
        label = np.concatenate([np.r_[rows, np.zeros(k - 1, bool)] for rows in labels])  # (R + E*(K-1),)
        if normalizer is not None:
            state = normalizer.normalize_state(state)
            action = normalizer.normalize_action(action)
        action = np.where(label[:, None], action, 0.0)
        self.state = state.astype(np.float32)
        self.action = action.astype(np.float32)
        self.pad = ~label
        padded_offsets = np.concatenate([[0], np.cumsum(lengths + k - 1)[:-1]])
        self.row_of = padded_offsets[self.episode_of] + self.step_of  # (N,) first row of chunk i
        weights = np.concatenate([e.row_weights()[s] for e, s in zip(episodes, steps)])  # (N,)
        # Only when some weight is not 1: batches without it compute exactly the unweighted loss.
        self.weight = weights if np.any(weights != 1.0) else None  # (N,) or None
        self._files: dict[int, object] = {}
        self._pid = None
        self._memory = None  # (rows, N, H, W, 3) uint8 when the images are held in memory
        if self.cameras and image_memory_gb is not None:
            self._load_images(image_memory_gb)

    def _load_images(self, budget_gb: float) -> None:
        """Every image of the sampled rows, decoded once (a batch is then one gather, not B x N HDF5 reads)."""
        import h5py

        rows = [len(np.unique(self.step_of[self.episode_of == i])) for i in range(len(self.episodes))]
        shapes = self.episodes[0].image_shapes
        frame_bytes = sum(3 * h * w for h, w in shapes.values())
        need = sum(rows) * frame_bytes
        if need > budget_gb * 1e9:
            raise DataError(f"the images of {sum(rows)} training steps x {len(self.cameras)} camera(s) "
                            f"({', '.join(f'{c} {h}x{w}' for c, (h, w) in shapes.items())}) need "
                            f"{need / 1e9:.1f} GB of memory, over --image-memory-gb {budget_gb:g}: raise it, "
                            f"use fewer cameras or smaller images (teleop render --image-size 96), or pass "
                            f"--image-memory-gb 0 to read them from the files each batch (slower)")
        parts, self._image_row = [], np.zeros(len(self.step_of), np.int64)
        start = 0
        for i, episode in enumerate(self.episodes):
            mine = np.flatnonzero(self.episode_of == i)
            steps = np.unique(self.step_of[mine])  # the rows of this episode that are samples
            file_steps = steps if episode.frames is None else episode.frames[steps]
            with h5py.File(episode.path, "r") as f:
                parts.append(np.stack([f[f"observations/images/{c}"][()][file_steps] for c in self.cameras],
                                      axis=1))  # (rows, N, H, W, 3)
            self._image_row[mine] = start + np.searchsorted(steps, self.step_of[mine])
            start += len(steps)
        self._memory = np.concatenate(parts) if parts else None

    def __len__(self) -> int:
        return int(self.episode_of.shape[0])

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return {k: v[0] for k, v in self.__getitems__([index]).items()}

    def __getitems__(self, indices) -> dict[str, np.ndarray]:
        indices = np.asarray(indices, dtype=np.int64)
        rows = self.row_of[indices][:, None] + np.arange(self.chunk_size)  # (B, K)
        batch = {
            "state": self.state[indices],  # (B, S)
            "action": self.action[rows],  # (B, K, A)
            "action_pad": self.pad[rows],  # (B, K) True past the episode end or where the policy drove
        }
        if self.weight is not None:
            batch["weight"] = self.weight[indices]  # (B,) loss weight of each sample
        if self.cameras:
            batch["images"] = self._images(indices)  # (B, N, 3, H, W)
        return batch

    def _images(self, indices: np.ndarray) -> np.ndarray:
        if self._memory is not None:
            images = self._memory[self._image_row[indices]].transpose(0, 1, 4, 2, 3)  # (B, N, 3, H, W)
            return images.astype(np.float32) / 255.0
        frames = []
        for i in indices:
            f = self._file(int(self.episode_of[i]))
            t = int(self.step_of[i])
            kept = self.episodes[int(self.episode_of[i])].frames
            if kept is not None:
                t = int(kept[t])
            frames.append(np.stack([f[f"observations/images/{c}"][t] for c in self.cameras]))  # (N, H, W, 3)
        images = np.stack(frames).transpose(0, 1, 4, 2, 3)  # (B, N, 3, H, W)
        return images.astype(np.float32) / 255.0

    def _file(self, episode: int):
        import h5py

        if self._pid != os.getpid():
            # A forked DataLoader worker inherits the parent's handles; HDF5 handles must not be
            # shared across processes, so every process opens its own.
            self._files, self._pid = {}, os.getpid()
        if episode not in self._files:
            self._files[episode] = h5py.File(self.episodes[episode].path, "r")
        return self._files[episode]

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_files"], state["_pid"] = {}, None  # spawned workers reopen the files
        return state

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files = {}


def collate(batch: dict[str, np.ndarray]) -> dict:
    """numpy batch -> torch tensors (the DataLoader's collate_fn with __getitems__)."""
    import torch

    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}


def step_indices(num_samples: int, batch_size: int, *, seed: int, step: int, rank: int = 0) -> np.ndarray:
    """The sample indices of one training step, a pure function of (seed, step, rank): a resumed
    run draws exactly the batches an uninterrupted run would have drawn."""
    rng = np.random.default_rng([seed, step, rank, 7])
    return rng.integers(0, num_samples, size=batch_size)


class StepBatches:
    """Batch sampler for the DataLoader: the index lists of steps start_step .. stop_step - 1."""

    def __init__(self, num_samples: int, batch_size: int, *, seed: int, rank: int,
                 start_step: int, stop_step: int):
        self.num_samples, self.batch_size = num_samples, batch_size
        self.seed, self.rank = seed, rank
        self.start_step, self.stop_step = start_step, stop_step

    def __len__(self) -> int:
        return max(0, self.stop_step - self.start_step)

    def __iter__(self):
        for step in range(self.start_step, self.stop_step):
            yield step_indices(self.num_samples, self.batch_size, seed=self.seed, step=step,
                               rank=self.rank).tolist()

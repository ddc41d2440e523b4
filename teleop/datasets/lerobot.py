"""``teleop export --format lerobot``: episodes -> one LeRobotDataset v3.0 folder.

The layout LeRobot's ``LeRobotDataset(repo_id, root=OUT)`` reads (``CODEBASE_VERSION = "v3.0"``;
``lerobot/datasets/utils.py``, ``lerobot_dataset.py``, ``compute_stats.py`` in huggingface/lerobot)::

    meta/info.json                          codebase_version, robot_type, totals, chunks_size, file size limits,
                                            fps, splits, data_path, video_path, features (dtype, shape, names;
                                            video features also an ``info`` block)
    meta/stats.json                         per feature: min, max, mean, std, count, q01, q10, q50, q90, q99
    meta/tasks.parquet                      index = the task string, column task_index
    meta/episodes/chunk-000/file-000.parquet  one row per episode: episode_index, tasks, length, data/chunk_index,
                                            data/file_index, dataset_from_index, dataset_to_index,
                                            videos/<key>/{chunk_index,file_index,from_timestamp,to_timestamp},
                                            meta/episodes/{chunk_index,file_index}, stats/<feature>/<stat>
    data/chunk-000/file-000.parquet         one row per step, one row group per episode
    videos/<key>/chunk-000/file-000.mp4     every episode's frames of one camera, one after another (H.264)
    meta/teleop_sources.json                which episode file each episode came from (LeRobot ignores it)

Per step (``data``): ``observation.state`` (MetaWorld's 39 floats, before the action),
``observation.environment_state`` (the object and goal entries of that state: LeRobot's ACT and
Diffusion policies refuse a dataset without an image or an environment state),
``action`` (4), ``next.reward``, ``next.success``, ``next.done`` (after the action; done on the last
step), then LeRobot's own ``timestamp`` (frame_index / fps, float32), ``frame_index``,
``episode_index``, ``index`` and ``task_index``. Cameras recorded in every episode become
``observation.images.<camera>`` videos at the control rate. LeRobot casts the data files to the
declared features, so every column is declared in ``info.json``.

Statistics are exact over all frames (LeRobot estimates quantiles from histograms and averages
per-episode quantiles; here ``np.quantile`` of all values, and images per channel from exact
pixel histograms, scaled to [0, 1] like LeRobot's).

The folder is written under a temporary name beside ``out`` and renamed at the end: a failure
leaves nothing under the final name.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from teleop.atomic import fsync_dir, temporary_name
from teleop.episode import read_episode
from teleop.errors import ToolkitError

CODEBASE_VERSION = "v3.0"
ROBOT_TYPE = "sawyer"  # MetaWorld's arm
CHUNKS_SIZE = 1000  # LeRobot's defaults: files per chunk folder, and the size at which it starts a new file
DATA_FILES_SIZE_IN_MB = 100
VIDEO_FILES_SIZE_IN_MB = 200
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"
EPISODES_PATH = "meta/episodes/" + CHUNK_FILE + ".parquet"
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
# A keyframe every 2 frames, LeRobot's own encoding setting: training reads frames at random, and each
# read decodes from the keyframe before it.
KEYFRAME_INTERVAL = 2
VIDEO_CRF = 23
SOURCES_NAME = "meta/teleop_sources.json"

_BODY = ["x", "y", "z", "qx", "qy", "qz", "qw"]
_FRAME = ["hand_x", "hand_y", "hand_z", "gripper", *(f"obj_{n}" for n in _BODY), *(f"obj2_{n}" for n in _BODY)]
STATE_NAMES = [*_FRAME, *(f"prev_{n}" for n in _FRAME), "goal_x", "goal_y", "goal_z"]  # MetaWorld's 39 floats
ENV_STATE_INDEX = [*range(4, 18), *range(36, 39)]  # objects' poses and the goal
ACTION_NAMES = ["dx", "dy", "dz", "gripper"]


@dataclass
class LeRobotExportResult:
    out: Path
    episodes: int
    frames: int
    task: str
    video_keys: list[str]
    cameras_left_out: list[str] = field(default_factory=list)  # recorded in some episodes only


def features(cameras: dict[str, tuple[int, int, int]], fps: int, *, corrections: bool = False) -> dict:
    """info.json's ``features``: every column of the data files, and each camera's video. With
    ``corrections`` (some episode was recorded by ``teleop correct``) an ``intervention`` column says which
    frames a person drove (every frame of a plain demo), as LeRobot's own DAgger recordings do."""
    scalar = {"shape": [1], "names": None}
    out = {
        "observation.state": {"dtype": "float32", "shape": [len(STATE_NAMES)], "names": list(STATE_NAMES)},
        "observation.environment_state": {"dtype": "float32", "shape": [len(ENV_STATE_INDEX)],
                                          "names": [STATE_NAMES[i] for i in ENV_STATE_INDEX]},
        "action": {"dtype": "float32", "shape": [len(ACTION_NAMES)], "names": list(ACTION_NAMES)},
        "next.reward": {"dtype": "float32", **scalar},
        "next.success": {"dtype": "bool", **scalar},
        "next.done": {"dtype": "bool", **scalar},
    }
    if corrections:
        out["intervention"] = {"dtype": "bool", **scalar}
    for camera, (h, w, c) in cameras.items():
        out[video_key(camera)] = {
            "dtype": "video", "shape": [h, w, c], "names": ["height", "width", "channels"],
            "info": {"video.height": h, "video.width": w, "video.codec": "h264", "video.pix_fmt": "yuv420p",
                     "video.is_depth_map": False, "video.fps": fps, "video.channels": c, "has_audio": False}}
    out["timestamp"] = {"dtype": "float32", **scalar}  # LeRobot's own columns, declared like the rest
    for key in ("frame_index", "episode_index", "index", "task_index"):
        out[key] = {"dtype": "int64", **scalar}
    return out


def video_key(camera: str) -> str:
    return f"observation.images.{camera}"


def export_lerobot(sources, out: str | os.PathLike, *, task: str | None = None,
                   progress: bool = False) -> LeRobotExportResult:
    """Write every episode of ``sources`` (session/episode folders or files) as a LeRobotDataset folder."""
    from teleop.datasets.merge import EpisodeFilter, check_compatible, find_duplicates, select

    out = Path(out)
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise ToolkitError(f"{out} already exists: export into a new folder")
    chosen = select(sources, EpisodeFilter(task=task))
    task = check_compatible(chosen)
    duplicates = find_duplicates(chosen)
    if duplicates:
        later, earlier, why = duplicates[0]
        raise ToolkitError(f"{later['path']} duplicates {earlier['path']} ({why}): merge with `teleop merge "
                           "--skip-duplicates` first, then export the merged folder")
    fps = _common_fps(chosen)
    cameras, left_out = _common_cameras(chosen)
    tmp = temporary_name(out)
    try:
        if tmp.exists():
            shutil.rmtree(tmp)  # left by an export that was killed
        tmp.mkdir(parents=True)
    except OSError as error:
        raise ToolkitError(f"cannot write {out}: {error.strerror or error}") from error
    try:
        frames = _write(tmp, chosen, task, fps, cameras, progress)
        _fsync_tree(tmp)
        if out.exists():
            out.rmdir()  # an empty folder: replaced by the export
        os.rename(tmp, out)
        fsync_dir(out.parent)
    except BaseException as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(error, OSError):
            raise ToolkitError(f"cannot write {out}: {error.strerror or error}") from error
        raise
    return LeRobotExportResult(out, len(chosen), frames, task, [video_key(c) for c in cameras], left_out)


# --------------------------------------------------------------------- checks before writing
def _common_fps(chosen: list[dict]) -> int:
    rates = sorted({float(e["control_hz"]) for e in chosen})
    if len(rates) > 1:
        raise ToolkitError(f"episodes recorded at different control rates ({', '.join(f'{r:g} Hz' for r in rates)}): "
                           "a LeRobot dataset has one fps: export each rate separately")
    fps = round(rates[0])
    if fps <= 0 or abs(fps - rates[0]) > 1e-9:
        raise ToolkitError(f"control rate {rates[0]:g} Hz is not a whole number of frames per second, "
                           "which LeRobot's fps must be")
    return fps


def _common_cameras(chosen: list[dict]) -> tuple[dict[str, tuple[int, int, int]], list[str]]:
    """Cameras with images in every episode (each with one image size), and those recorded in only some."""
    import h5py

    shapes: list[dict[str, tuple]] = []
    for e in chosen:
        with h5py.File(e["path"], "r") as f:
            group = f.get("observations/images")
            shapes.append({name: tuple(group[name].shape[1:]) for name in group} if group is not None else {})
    everywhere = set.intersection(*(set(s) for s in shapes))
    somewhere = sorted(set.union(*(set(s) for s in shapes)) - everywhere)
    cameras = {}
    for camera in sorted(everywhere):
        sizes = {s[camera] for s in shapes}
        if len(sizes) > 1:
            listed = ", ".join("x".join(map(str, size[:2])) for size in sorted(sizes))
            raise ToolkitError(f"camera {camera} was recorded at several image sizes ({listed}): a LeRobot video "
                               "feature has one shape: export each size separately")
        h, w, c = sizes.pop()
        cameras[camera] = (h - h % 2, w - w % 2, c)  # H.264 (yuv420p) needs even sides: an odd row/column is cut
    return cameras, somewhere


# --------------------------------------------------------------------- writing
def _write(root: Path, chosen: list[dict], task: str, fps: int, cameras: dict, progress: bool) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from teleop.episode import read_intervention

    corrections = any(read_intervention(e["path"]) is not None for e in chosen)
    feats = features(cameras, fps, corrections=corrections)
    schema = _data_schema(feats)
    data_path = root / DATA_PATH.format(chunk_index=0, file_index=0)
    data_path.parent.mkdir(parents=True)
    videos = {camera: _VideoFile(root / VIDEO_PATH.format(video_key=video_key(camera), chunk_index=0, file_index=0),
                                 fps) for camera in cameras}
    columns: dict[str, list[np.ndarray]] = {key: [] for key, ft in feats.items() if ft["dtype"] != "video"}
    histograms = {camera: np.zeros((3, 256), dtype=np.int64) for camera in cameras}
    episodes, sources = [], []
    start = 0
    writer = pq.ParquetWriter(data_path, schema, compression="snappy")
    try:
        for index, attrs in enumerate(_bar(chosen, progress)):
            episode = read_episode(attrs["path"], images=list(cameras))
            values = _frame_columns(episode, index, start, fps, corrections=corrections)
            writer.write_table(pa.table({k: _arrow_column(v, schema.field(k).type) for k, v in values.items()},
                                        schema=schema))  # one row group per episode
            stats = {key: numeric_stats(v) for key, v in values.items()}
            row = {"episode_index": index, "tasks": [task], "length": episode.num_steps,
                   "data/chunk_index": 0, "data/file_index": 0,
                   "dataset_from_index": start, "dataset_to_index": start + episode.num_steps}
            for camera, shape in cameras.items():
                frames = episode.images[camera][:, : shape[0], : shape[1]]
                videos[camera].append(frames)
                counts = pixel_histogram(frames)
                histograms[camera] += counts
                stats[video_key(camera)] = image_stats(counts, len(frames))
                key = video_key(camera)
                row.update({f"videos/{key}/chunk_index": 0, f"videos/{key}/file_index": 0,
                            f"videos/{key}/from_timestamp": start / fps,
                            f"videos/{key}/to_timestamp": (start + episode.num_steps) / fps})
            row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
            row.update({f"stats/{key}/{name}": _json_ready(value)
                        for key, feature_stats in stats.items() for name, value in feature_stats.items()})
            episodes.append(row)
            for key, v in values.items():
                columns[key].append(v)
            sources.append(_provenance(index, attrs))
            start += episode.num_steps
    finally:
        writer.close()
        for video in videos.values():
            video.close()
    frames_total = start

    dataset_stats = {key: numeric_stats(np.concatenate(parts)) for key, parts in columns.items()}
    dataset_stats.update({video_key(c): image_stats(histograms[c], frames_total) for c in cameras})
    _write_json(root / "meta/stats.json", {k: {s: _json_ready(v) for s, v in st.items()}
                                           for k, st in dataset_stats.items()})
    episodes_path = root / EPISODES_PATH.format(chunk_index=0, file_index=0)
    episodes_path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(episodes), episodes_path, compression="snappy")
    _write_tasks(root / "meta/tasks.parquet", [task])
    info = {
        "codebase_version": CODEBASE_VERSION, "robot_type": ROBOT_TYPE,
        "total_episodes": len(episodes), "total_frames": frames_total, "total_tasks": 1,
        "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": DATA_FILES_SIZE_IN_MB,
        "video_files_size_in_mb": VIDEO_FILES_SIZE_IN_MB, "fps": fps,
        "splits": {"train": f"0:{len(episodes)}"},
        "data_path": DATA_PATH, "video_path": VIDEO_PATH if cameras else None,
        "features": feats,
    }
    _write_json(root / "meta/info.json", info)
    versions = chosen[0].get("versions") or {}
    _write_json(root / SOURCES_NAME, {"task": task, "versions": versions, "episodes": sources})
    return frames_total


def _frame_columns(episode, episode_index: int, start: int, fps: int, *,
                   corrections: bool = False) -> dict[str, np.ndarray]:
    """The data file's columns for one episode, as stored (float32 / bool / int64)."""
    t = episode.num_steps
    extra = {}
    if corrections:  # a plain demo was driven by a person throughout
        extra["intervention"] = (np.asarray(episode.intervention, dtype=bool) if episode.is_correction
                                 else np.ones(t, dtype=bool))
    state = np.asarray(episode.state, dtype=np.float32)
    done = np.zeros(t, dtype=bool)
    done[-1] = True
    frame_index = np.arange(t, dtype=np.int64)
    return {
        "observation.state": state,
        "observation.environment_state": np.ascontiguousarray(state[:, ENV_STATE_INDEX]),
        "action": np.asarray(episode.action, dtype=np.float32),
        "next.reward": np.asarray(episode.reward, dtype=np.float32),
        "next.success": np.asarray(episode.success, dtype=bool),
        "next.done": done,
        **extra,
        "timestamp": (frame_index / fps).astype(np.float32),
        "frame_index": frame_index,
        "episode_index": np.full(t, episode_index, dtype=np.int64),
        "index": np.arange(start, start + t, dtype=np.int64),
        "task_index": np.zeros(t, dtype=np.int64),
    }


def _data_schema(feats: dict):
    """Arrow types as LeRobot (through Hugging Face ``datasets``) writes them: shape (1,) a plain value,
    shape (n,) a fixed-size list of n."""
    import pyarrow as pa

    fields = []
    for key, ft in feats.items():
        if ft["dtype"] == "video":
            continue
        value = {"float32": pa.float32(), "int64": pa.int64(), "bool": pa.bool_()}[ft["dtype"]]
        fields.append(pa.field(key, value if ft["shape"] == [1] else pa.list_(value, ft["shape"][0])))
    return pa.schema(fields)


def _arrow_column(values: np.ndarray, arrow_type):
    import pyarrow as pa

    if values.ndim == 1:
        return pa.array(values, type=arrow_type)
    flat = pa.array(np.ascontiguousarray(values).reshape(-1), type=arrow_type.value_type)
    return pa.FixedSizeListArray.from_arrays(flat, values.shape[1])


def _write_tasks(path: Path, tasks: list[str]) -> None:
    """tasks.parquet as pandas writes a DataFrame indexed by the task string (LeRobot reads it with pandas)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    index = "__index_level_0__"
    pandas_meta = {
        "index_columns": [index],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": None, "field_name": index, "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }
    schema = pa.schema([pa.field("task_index", pa.int64()), pa.field(index, pa.string())],
                       metadata={b"pandas": json.dumps(pandas_meta).encode()})
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), index: pa.array(tasks, pa.string())},
                     schema=schema)
    pq.write_table(table, path)


# --------------------------------------------------------------------- statistics
def numeric_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """min, max, mean, std (population), count and quantiles over the frames (axis 0) of one column.

    Shape (n,) per statistic for a vector column, (1,) for a scalar one, ``count`` (1,): as LeRobot's
    stats.json has them. Booleans count as 0/1.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v.reshape(len(v), -1)
    stats = {"min": v.min(axis=0), "max": v.max(axis=0), "mean": v.mean(axis=0), "std": v.std(axis=0),
             "count": np.array([len(v)], dtype=np.int64)}
    for name, q in QUANTILES.items():
        stats[name] = np.quantile(v, q, axis=0)
    return stats


def pixel_histogram(frames: np.ndarray) -> np.ndarray:
    """(3, 256) counts of each value per RGB channel over all pixels of ``frames`` (T, H, W, 3) uint8."""
    flat = np.asarray(frames, dtype=np.uint8).reshape(-1, 3)
    return np.stack([np.bincount(flat[:, c], minlength=256) for c in range(3)]).astype(np.int64)


def image_stats(counts: np.ndarray, num_frames: int) -> dict[str, np.ndarray]:
    """Per-channel statistics of pixel values scaled to [0, 1], shape (3, 1, 1) each (LeRobot's layout for
    images and videos), from exact histograms; quantiles interpolate like ``np.quantile``; ``count`` is
    the number of frames."""
    values = np.arange(256, dtype=np.float64)
    n = counts.sum(axis=1).astype(np.float64)
    mean = counts @ values / n
    std = np.sqrt(np.maximum(counts @ values**2 / n - mean**2, 0.0))
    stats = {"min": np.array([values[np.flatnonzero(c)[0]] for c in counts]),
             "max": np.array([values[np.flatnonzero(c)[-1]] for c in counts]),
             "mean": mean, "std": std}
    for name, q in QUANTILES.items():
        stats[name] = np.array([_histogram_quantile(c, q) for c in counts])
    stats = {k: (v / 255.0).reshape(3, 1, 1) for k, v in stats.items()}
    stats["count"] = np.array([num_frames], dtype=np.int64)
    return stats


def _histogram_quantile(counts: np.ndarray, q: float) -> float:
    """``np.quantile`` (linear) of the integers 0..255 repeated ``counts`` times."""
    cumulative = np.cumsum(counts)
    position = q * (cumulative[-1] - 1)
    below = int(np.floor(position))
    low = np.searchsorted(cumulative, below, side="right")
    high = np.searchsorted(cumulative, min(below + 1, cumulative[-1] - 1), side="right")
    return float(low + (position - below) * (high - low))


def _json_ready(value: np.ndarray):
    return np.asarray(value).tolist()


# --------------------------------------------------------------------- files
class _VideoFile:
    """All episodes' frames of one camera in one H.264 mp4 at ``fps``: frame i at i / fps seconds.

    Like ``teleop.video.VideoWriter`` (imageio-ffmpeg's libx264, yuv420p), with LeRobot's keyframe interval.
    """

    def __init__(self, path: Path, fps: int):
        self.path = path
        self.fps = fps
        self._writer = None

    def append(self, frames: np.ndarray) -> None:
        if self._writer is None:
            import imageio_ffmpeg

            self.path.parent.mkdir(parents=True, exist_ok=True)
            h, w = frames.shape[1:3]
            self._writer = imageio_ffmpeg.write_frames(
                str(self.path), (w, h), fps=self.fps, codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
                quality=None, macro_block_size=1,
                output_params=["-crf", str(VIDEO_CRF), "-g", str(KEYFRAME_INTERVAL), "-movflags", "+faststart"])
            self._writer.send(None)  # start the encoder
        for frame in frames:
            self._writer.send(np.ascontiguousarray(frame, dtype=np.uint8))

    def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4), encoding="utf-8")


def _provenance(index: int, attrs: dict) -> dict:
    return {"episode_index": index, "source_file": str(attrs.get("source_file") or Path(attrs["path"]).resolve()),
            "seed": int(attrs["seed"]), "operator": str(attrs.get("operator", "")),
            "session": str(attrs.get("session", "")), "success": bool(attrs["success"]),
            "num_steps": int(attrs["num_steps"])}


def _fsync_tree(root: Path) -> None:
    """Flush every file and folder of the finished export to disk before it gets its final name."""
    for folder, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(folder)


def _bar(items, enabled: bool):
    if not enabled:
        return items
    import sys

    from tqdm import tqdm

    return tqdm(items, desc="exporting", unit="episode", file=sys.stderr)

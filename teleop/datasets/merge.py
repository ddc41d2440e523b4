"""``teleop merge``: several operators' sessions into one dataset folder.

Sources are session folders (one sub-folder of episodes per task), plain
episode folders, or single episode files. The merge refuses what would make a
bad dataset: more than one task, episodes recorded with different simulator
versions (metaworld, mujoco: replay and rewards depend on them), files of
another schema, the same seed twice (the same spawn recorded twice) or the
same actions twice (the same episode copied twice). Every copied file keeps
its own attrs (operator, session, hostname) and gains ``source_file`` and
``actions_sha256``; ``merge.json`` in the output lists them all.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from teleop.atomic import replacing, write_json
from teleop.episode import FILE_PATTERN, EpisodeError, episode_files, episode_name, read_attrs, utc_now
from teleop.errors import ToolkitError

MANIFEST_NAME = "merge.json"
ENV_VERSION_KEYS = ("metaworld", "mujoco")


class MergeError(ToolkitError):
    """Sources that must not be merged; the message says why and what to do."""


@dataclass(frozen=True)
class EpisodeFilter:
    """Which episodes to take (every field optional)."""

    operators: tuple[str, ...] = ()  # keep only these operators
    task: str | None = None  # keep only this task
    success_only: bool = False
    min_steps: int | None = None
    max_steps: int | None = None

    def accepts(self, attrs: dict) -> bool:
        steps = int(attrs["num_steps"])
        return ((not self.operators or str(attrs.get("operator", "")) in self.operators)
                and (self.task is None or attrs["task"] == self.task)
                and (not self.success_only or bool(attrs["success"]))
                and (self.min_steps is None or steps >= self.min_steps)
                and (self.max_steps is None or steps <= self.max_steps))


def source_files(source: str | os.PathLike) -> list[Path]:
    """Episode files of a file, an episode folder, or a folder of episode folders (a session)."""
    source = Path(source)
    if source.is_file():
        if not FILE_PATTERN.match(source.name):
            raise MergeError(f"{source} is not an episode file (episode_NNNNNN.hdf5)")
        return [source]
    if not source.is_dir():
        raise MergeError(f"{source} does not exist: pass session folders, episode folders or episode files")
    files = episode_files(source)
    for sub in sorted(p for p in source.iterdir() if p.is_dir()):
        files.extend(episode_files(sub))
    if not files:
        raise MergeError(f"{source} holds no episode files")
    return files


def actions_sha256(path: Path) -> str:
    import h5py

    with h5py.File(path, "r") as f:
        action = np.ascontiguousarray(f["action"][()])
    return hashlib.sha256(action.tobytes()).hexdigest()


def select(sources, episode_filter: EpisodeFilter = EpisodeFilter()) -> list[dict]:
    """Attrs (with ``path``) of every episode of the sources that passes the filter; unreadable files refuse."""
    chosen = []
    for source in sources:
        for path in source_files(source):
            try:
                attrs = read_attrs(path)
            except EpisodeError as error:
                raise MergeError(f"cannot merge: {error}") from error
            if episode_filter.accepts(attrs):
                attrs["path"] = path
                chosen.append(attrs)
    if not chosen:
        raise MergeError(f"no episode of {', '.join(map(str, sources))} passes the filters: loosen them")
    return chosen


def check_compatible(episodes: list[dict]) -> str:
    """One task and one simulator version across the episodes; returns the task."""
    tasks = sorted({e["task"] for e in episodes})
    if len(tasks) > 1:
        counts = ", ".join(f"{t} ({sum(e['task'] == t for e in episodes)})" for t in tasks)
        raise MergeError(f"the sources hold several tasks: {counts}; a dataset holds one task: pass --task NAME")
    by_version: dict[tuple, Path] = {}
    for e in episodes:
        versions = e.get("versions") or {}
        by_version.setdefault(tuple(str(versions.get(k, "unknown")) for k in ENV_VERSION_KEYS), e["path"])
    if len(by_version) > 1:
        described = "; ".join(f"{', '.join(f'{k} {v}' for k, v in zip(ENV_VERSION_KEYS, key))} (e.g. {path})"
                              for key, path in by_version.items())
        raise MergeError(f"episodes were recorded with different simulator versions: {described}; replay and "
                         "rewards differ between them: merge each version separately")
    return tasks[0]


def find_duplicates(episodes: list[dict]) -> list[tuple[dict, dict, str]]:
    """(later, earlier, why) for every episode that repeats an earlier seed or earlier actions."""
    by_seed, by_actions, duplicates = {}, {}, []
    for e in episodes:
        e.setdefault("actions_sha256", actions_sha256(e["path"]))
        seed, digest = int(e["seed"]), e["actions_sha256"]
        if seed in by_seed:
            duplicates.append((e, by_seed[seed], f"same seed {seed}"))
        elif digest in by_actions:
            duplicates.append((e, by_actions[digest], "same actions"))
        else:
            by_seed[seed] = e
            by_actions[digest] = e
    return duplicates


@dataclass
class MergeResult:
    out: Path
    written: list[Path]
    skipped: list[str]  # one line per duplicate left out
    task: str


def merge(sources, out: str | os.PathLike, *, episode_filter: EpisodeFilter = EpisodeFilter(),
          skip_duplicates: bool = False) -> MergeResult:
    """Copy the selected episodes of ``sources`` into ``out`` as episode_000000.hdf5, ... (atomically)."""
    out = Path(out)
    if out.exists() and episode_files(out):
        raise MergeError(f"{out} already holds episodes: merge into a new folder")
    episodes = select(sources, episode_filter)
    task = check_compatible(episodes)
    duplicates = find_duplicates(episodes)
    if duplicates and not skip_duplicates:
        later, earlier, why = duplicates[0]
        raise MergeError(f"{later['path']} duplicates {earlier['path']} ({why}; {len(duplicates)} duplicate(s) in all): "
                         "pass each source once, or --skip-duplicates to keep only the first copy")
    dropped = {id(d[0]) for d in duplicates}
    skipped = [f"{d[0]['path']}: {d[2]} as {d[1]['path']}" for d in duplicates]
    out.mkdir(parents=True, exist_ok=True)
    written, manifest = [], []
    for e in (e for e in episodes if id(e) not in dropped):
        target = out / episode_name(len(written))
        _copy_with_provenance(e["path"], target, e["actions_sha256"])
        written.append(target)
        manifest.append({"file": target.name, "source_file": str(Path(e["path"]).resolve()),
                         "operator": str(e.get("operator", "")), "session": str(e.get("session", "")),
                         "hostname": str(e.get("hostname", "")), "seed": int(e["seed"]),
                         "success": bool(e["success"]), "num_steps": int(e["num_steps"]),
                         "actions_sha256": e["actions_sha256"]})
    write_json(out / MANIFEST_NAME, {
        "task": task, "merged_at": utc_now(), "sources": [str(Path(s).resolve()) for s in sources],
        "filter": {"operators": list(episode_filter.operators), "task": episode_filter.task,
                   "success_only": episode_filter.success_only, "min_steps": episode_filter.min_steps,
                   "max_steps": episode_filter.max_steps},
        "skipped_duplicates": skipped, "episodes": manifest})
    return MergeResult(out, written, skipped, task)


def _copy_with_provenance(source: Path, target: Path, digest: str) -> None:
    """Copy under a temporary name, add provenance attrs, fsync, rename: never a half file under a final name."""
    import h5py

    try:
        with replacing(target) as tmp:
            shutil.copyfile(source, tmp)
            with h5py.File(tmp, "a") as f:
                f.attrs["source_file"] = str(Path(source).resolve())
                f.attrs["actions_sha256"] = digest
                if "hostname" not in f.attrs:
                    f.attrs["hostname"] = ""
    except OSError as error:
        raise MergeError(f"cannot write {target}: {error.strerror or error}; files merged before it are intact") from error

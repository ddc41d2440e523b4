"""Atomic file replacement: a file appears under its final name complete, or not at all.

Every writer of lasting files (episodes, session state, merged and exported datasets,
checkpoints, evaluation results) goes through ``replacing``, so a crash, a kill or a full disk
never leaves a half-written file under a final name.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

TMP_SUFFIX = ".partial"


def temporary_name(path: Path) -> Path:
    """The hidden name a file is written under before it is renamed to ``path``."""
    return path.with_name(f".{path.name}{TMP_SUFFIX}")


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write in any way (open, h5py, torch.save).

    When the block ends normally the file is fsynced and renamed over ``path``, and the folder
    is fsynced so the rename survives a power cut. When it raises, the temporary file is removed
    and the exception propagates; whatever was under ``path`` before is untouched.
    """
    path = Path(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, data) -> None:
    """``data`` as indented JSON with sorted keys (state and manifest files people read and diff)."""
    write_text(path, json.dumps(data, indent=1, sort_keys=True))


def fsync_dir(folder: str | os.PathLike) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on folders; the rename itself is still atomic
    finally:
        os.close(fd)

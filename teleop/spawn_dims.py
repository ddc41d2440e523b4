"""What each entry of a task's random vector moves: "object x", "goal z", ...

A MetaWorld task randomizes its episodes through one vector (``rand_vec``) drawn from the task's
``_random_reset_space``. For most tasks its first three entries are the object's position and the
last three the goal's, but not for all: six tasks keep the object in one place and move only the goal
(assembly, pick-out-of-hole and the four plate-slide tasks), reach-v3 places a puck it never uses,
door and drawer tasks move the whole fixture. A spawn is every entry the task randomizes, so the
diversity report, the single-spawn guard and act-eval's coverage all work on the varying entries and
name them from this table.

The names were measured, not read from MetaWorld's code: teleop/spawn_survey.py resets a task on 16
random spawns and names each varying entry after the observed coordinate it moves with: the object
(observation[4:7]), a second object ([11:14]) or the goal ([36:39]). Entries of an object the task
never reads are marked "(unused by the task)" (reach's puck); the diversity guard counts the used
entries, reports show all of them. The table for all 50 v3 tasks is ``teleop/data/spawn_dims.json``;
``python -m teleop.spawn_survey`` writes it again and tests/test_spawn_dims.py measures tasks against it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

TABLE = Path(__file__).parent / "data" / "spawn_dims.json"
UNUSED = " (unused by the task)"


def varying(low, high) -> np.ndarray:
    """Indices of the random vector's entries that the task actually randomizes."""
    return np.flatnonzero(np.asarray(high, dtype=float) - np.asarray(low, dtype=float) > 1e-12)


@lru_cache(maxsize=1)
def _table() -> dict[str, list[str]]:
    try:
        return json.loads(TABLE.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def used(names) -> list[bool]:
    return [not name.endswith(UNUSED) for name in names]


def used_entries(task: str, low, high) -> list[tuple[int, str]]:
    """(index, name) of each random-vector entry the task randomizes and reads: what makes two of its
    spawns different (plate-slide's goal, not its fixed puck; reach's goal, not its unused puck)."""
    names = dimension_names(task, len(low))
    read = used(names)
    return [(int(i), names[i]) for i in varying(low, high) if read[i]]


def plane(task: str, low, high) -> list[tuple[int, str]]:
    """The (index, name) of the two randomized entries a spawn plot shows: the first two the task
    uses (the object's x and y for most tasks, the goal's where only the goal moves)."""
    names = dimension_names(task, len(low))
    return used_entries(task, low, high)[:2] or [(int(i), names[i]) for i in varying(low, high)[:2]]


def spawn_axes(ax, task: str, low, high, *, pad: float = 0.02) -> tuple[int, int]:
    """Set up a matplotlib axes to show spawns on the task's :func:`plane`: the spawn box's outline,
    named axes, limits. Returns the two indices into the random vector to scatter."""
    from matplotlib.patches import Rectangle

    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    shown = plane(task, low, high)
    if len(shown) < 2:  # one entry varies (or none): plot it against a constant one
        fixed = next(i for i in range(low.size) if i not in [j for j, _ in shown])
        shown = (shown + [(fixed, dimension_names(task, low.size)[fixed])])[:2]
    (i, name_i), (j, name_j) = shown
    ax.add_patch(Rectangle((low[i], low[j]), max(high[i] - low[i], 1e-3), max(high[j] - low[j], 1e-3),
                           fill=False, ls="--", color="gray", label="spawn box"))
    ax.set_xlabel(f"{name_i} (m)")
    ax.set_ylabel(f"{name_j} (m)")
    ax.set_xlim(low[i] - pad, high[i] + pad)
    ax.set_ylim(low[j] - pad, high[j] + pad)
    ax.set_aspect("equal")
    return i, j


def object_used(task: str) -> bool:
    """False when the task never reads the object it places (reach's puck): a hand-object distance
    means nothing there. True for every other task, and for a task the table does not know."""
    names = [name for name in _table().get(task, ()) if name.startswith("object")]
    return not names or not all(name.endswith(UNUSED) for name in names)


def dimension_names(task: str, size: int) -> list[str]:
    """A name for each of the ``size`` entries of ``task``'s random vector ("rand_vec[i]" if unknown)."""
    names = _table().get(task)
    if names is None or len(names) != size:
        return [f"rand_vec[{i}]" for i in range(size)]
    return list(names)

"""Where a policy was evaluated, against where it was trained.

For every evaluation spawn: the distance to the nearest training spawn and
whether it lies inside the convex hull of the training spawns, over every
entry of the random vector the task randomizes and uses (object and goal
alike; teleop.spawn_dims names them). A policy trained on one spawn has a
hull that is a single point, so every random evaluation spawn is reported
outside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from teleop.hull import inside_hull


@dataclass(frozen=True)
class SpawnRelation:
    nearest_train_distance: np.ndarray  # (M,) metres, over the compared entries
    inside_hull: np.ndarray  # (M,) bool
    axes: np.ndarray  # indices into the random vector of the compared entries
    names: tuple  # their names ("object x", "goal z", ...)


def compared_axes(task: str, low, high, width: int) -> np.ndarray:
    """The random vector's entries that the task randomizes and uses, among the first ``width``
    (results written before whole vectors were kept hold the first three: the object's)."""
    from teleop.spawn_dims import dimension_names, used, varying

    names = dimension_names(task, len(low))
    axes = [i for i in varying(low, high) if i < width]
    return np.array([i for i in axes if used(names)[i]] or axes, dtype=int)


def relate(train_spawns, eval_spawns, low, high, *, task: str = "") -> SpawnRelation:
    """train_spawns (N, D), eval_spawns (M, D): the random vectors the episodes started from."""
    from teleop.spawn_dims import dimension_names

    train = np.atleast_2d(np.asarray(train_spawns, dtype=float))
    evals = np.atleast_2d(np.asarray(eval_spawns, dtype=float))
    axes = compared_axes(task, low, high, min(train.shape[1], evals.shape[1]))
    names = tuple(dimension_names(task, len(low))[i] for i in axes)
    train, evals = train[:, axes], evals[:, axes]
    if train.shape[0] == 0:
        inf = np.full(evals.shape[0], np.inf)
        return SpawnRelation(inf, np.zeros(evals.shape[0], bool), axes, names)
    diff = evals[:, None, :] - train[None, :, :]  # (M, N, d)
    nearest = np.sqrt((diff**2).sum(-1)).min(axis=1)  # (M,)
    inside = inside_hull(evals, train)
    return SpawnRelation(nearest, inside, axes, names)


def plot_coverage(path, train_spawns, eval_spawns, success, low, high, *, task: str = "", title: str = "") -> None:
    """PNG of the spawn box on the task's two main randomized entries: training spawns, and
    evaluation spawns colored by success."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from teleop.spawn_dims import spawn_axes

    train = np.atleast_2d(np.asarray(train_spawns, dtype=float))
    evals = np.atleast_2d(np.asarray(eval_spawns, dtype=float))
    success = np.asarray(success, dtype=bool)
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    i, j = spawn_axes(ax, task, low, high)
    if train.size and max(i, j) < train.shape[1]:
        ax.scatter(train[:, i], train[:, j], s=30, marker="s", facecolors="none", edgecolors="black",
                   label=f"training spawns ({len(train)})")
    ax.scatter(evals[success, i], evals[success, j], s=22, c="tab:green", label=f"eval success ({success.sum()})")
    ax.scatter(evals[~success, i], evals[~success, j], s=26, c="tab:red", marker="x",
               label=f"eval failure ({(~success).sum()})")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

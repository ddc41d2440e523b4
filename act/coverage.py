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

# Closer than this (metres) to the training spawns' hull counts as inside it.
HULL_TOLERANCE = 1e-4


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
    inside = np.array([in_hull(p, train) for p in evals], dtype=bool)
    return SpawnRelation(nearest, inside, axes, names)


def in_hull(point: np.ndarray, points: np.ndarray, tol: float = HULL_TOLERANCE) -> bool:
    """Is ``point`` inside the convex hull of ``points`` (N, d), whatever the hull's dimension?

    The hull of collinear or identical points is flat: the point must lie on
    the points' affine subspace (within ``tol``) and inside the hull there.
    """
    point = np.asarray(point, dtype=float)
    points = np.asarray(points, dtype=float)
    origin = points.mean(axis=0)
    centered = points - origin
    _, singular, vt = np.linalg.svd(centered, full_matrices=False)
    rank = int(np.sum(singular > tol))
    offset = point - origin
    if rank == 0:
        return bool(np.linalg.norm(offset) <= tol)
    basis = vt[:rank]  # (r, d) orthonormal rows spanning the points
    coords = offset @ basis.T  # (r,)
    if np.linalg.norm(offset - coords @ basis) > tol:
        return False
    projected = centered @ basis.T  # (N, r)
    if rank == 1:
        return bool(projected.min() - tol <= coords[0] <= projected.max() + tol)
    from scipy.spatial import Delaunay

    return bool(Delaunay(projected).find_simplex(coords, tol=tol) >= 0) or _near_hull(coords, projected, tol)


def _near_hull(point: np.ndarray, points: np.ndarray, tol: float) -> bool:
    from scipy.spatial import ConvexHull

    hull = ConvexHull(points)
    # equations: normal . x + offset <= 0 inside
    return bool(np.all(hull.equations[:, :-1] @ point + hull.equations[:, -1] <= tol))


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

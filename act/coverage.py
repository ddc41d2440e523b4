"""Where a policy was evaluated, against where it was trained.

For every evaluation spawn: the distance to the nearest training spawn and
whether it lies inside the convex hull of the training spawns (over the
object's varying spawn axes). A policy trained on one spawn has a hull that
is a single point, so every random evaluation spawn is reported outside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Closer than this (metres) to the training spawns' hull counts as inside it.
HULL_TOLERANCE = 1e-4


@dataclass(frozen=True)
class SpawnRelation:
    nearest_train_distance: np.ndarray  # (M,) metres, over the varying axes
    inside_hull: np.ndarray  # (M,) bool
    axes: np.ndarray  # indices of the object axes that vary in the spawn box


def varying_axes(low, high) -> np.ndarray:
    low, high = np.asarray(low, dtype=float)[:3], np.asarray(high, dtype=float)[:3]
    return np.flatnonzero(high - low > 1e-12)


def relate(train_spawns, eval_spawns, low, high) -> SpawnRelation:
    """train_spawns (N, >=3), eval_spawns (M, >=3): object spawn positions (rand_vec[:3])."""
    axes = varying_axes(low, high)
    train = np.atleast_2d(np.asarray(train_spawns, dtype=float))[:, :3][:, axes]
    evals = np.atleast_2d(np.asarray(eval_spawns, dtype=float))[:, :3][:, axes]
    if train.shape[0] == 0:
        inf = np.full(evals.shape[0], np.inf)
        return SpawnRelation(inf, np.zeros(evals.shape[0], bool), axes)
    diff = evals[:, None, :] - train[None, :, :]  # (M, N, d)
    nearest = np.sqrt((diff**2).sum(-1)).min(axis=1)  # (M,)
    inside = np.array([in_hull(p, train) for p in evals], dtype=bool)
    return SpawnRelation(nearest, inside, axes)


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


def plot_coverage(path, train_spawns, eval_spawns, success, low, high, *, title: str = "") -> None:
    """PNG of the spawn box: training spawns, and evaluation spawns colored by success."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    train = np.asarray(train_spawns, dtype=float).reshape(-1, 3)  # object spawn positions
    evals = np.asarray(eval_spawns, dtype=float).reshape(-1, 3)
    success = np.asarray(success, dtype=bool)
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    ax.add_patch(Rectangle((low[0], low[1]), max(high[0] - low[0], 1e-3), max(high[1] - low[1], 1e-3),
                           fill=False, ls="--", color="gray", label="task spawn box"))
    if train.size:
        ax.scatter(train[:, 0], train[:, 1], s=30, marker="s", facecolors="none", edgecolors="black",
                   label=f"training spawns ({len(train)})")
    ax.scatter(evals[success, 0], evals[success, 1], s=22, c="tab:green", label=f"eval success ({success.sum()})")
    ax.scatter(evals[~success, 0], evals[~success, 1], s=26, c="tab:red", marker="x",
               label=f"eval failure ({(~success).sum()})")
    ax.set_xlabel("object x (m)")
    ax.set_ylabel("object y (m)")
    ax.set_xlim(low[0] - 0.02, high[0] + 0.02)
    ax.set_ylim(low[1] - 0.02, high[1] + 0.02)
    ax.set_aspect("equal")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

"""Convex hulls of spawns: which points lie inside one, and how much of the spawn box it encloses.

A policy trained on a set of spawns interpolates inside their convex hull and extrapolates outside
it, and that is where its failures gather (BENCHMARKS.md, "Spawns spread toward the faces"). So
act-eval splits its results by the hull of the training spawns, and `teleop inspect` reports the
share of the spawn box that a dataset's hull encloses: about that share of act-eval's uniform
spawns will fall inside it.
"""

from __future__ import annotations

import numpy as np

# Closer than this (metres) to a hull counts as inside it.
HULL_TOLERANCE = 1e-4

# Uniform points in the spawn box that estimate the enclosed share (standard error under 1.1 points).
SHARE_SAMPLES = 2000

# The hull of more spawns is built from a seeded subset of this many: the share of a 6-entry hull
# takes 0.9 s for 200 spawns, 1.7 s for 300 (this VM). The subset's hull lies inside the whole
# one, so the share it gives is a lower bound.
SHARE_MAX_POINTS = 200


def inside_hull(queries, points, tol: float = HULL_TOLERANCE, *, facets: bool = True) -> np.ndarray:
    """(M,) bool: does each of ``queries`` (M, d) lie inside the convex hull of ``points`` (N, d),
    whatever the hull's dimension?

    The hull of collinear or identical points is flat: a query must lie on the points' affine
    subspace (within ``tol``) and inside the hull there. ``facets``: settle the queries the
    triangulation leaves outside with the hull's facets as well, for a query on a facet; the
    facets of a 6-entry hull of 100 points take most of a second, so a volume estimate leaves them.
    """
    queries = np.atleast_2d(np.asarray(queries, dtype=float))
    points = np.atleast_2d(np.asarray(points, dtype=float))
    if points.shape[0] == 0:
        return np.zeros(queries.shape[0], dtype=bool)
    origin = points.mean(axis=0)
    centered = points - origin
    _, singular, vt = np.linalg.svd(centered, full_matrices=False)
    rank = int(np.sum(singular > tol))
    offsets = queries - origin
    if rank == 0:
        return np.linalg.norm(offsets, axis=1) <= tol
    basis = vt[:rank]  # (r, d) orthonormal rows spanning the points
    coords = offsets @ basis.T  # (M, r)
    on_subspace = np.linalg.norm(offsets - coords @ basis, axis=1) <= tol
    projected = centered @ basis.T  # (N, r)
    if rank == 1:
        inside = (projected.min() - tol <= coords[:, 0]) & (coords[:, 0] <= projected.max() + tol)
        return on_subspace & inside
    from scipy.spatial import ConvexHull, Delaunay

    inside = Delaunay(projected).find_simplex(coords, tol=tol) >= 0
    unsure = on_subspace & ~inside
    if facets and unsure.any():
        # find_simplex can miss a point on a facet; the facets' equations settle it (normal . x + offset <= 0).
        eq = ConvexHull(projected).equations
        inside[unsure] = np.all(coords[unsure] @ eq[:, :-1].T + eq[:, -1] <= tol, axis=1)
    return on_subspace & inside


def in_hull(point, points, tol: float = HULL_TOLERANCE) -> bool:
    """Is ``point`` (d,) inside the convex hull of ``points`` (N, d)?"""
    return bool(inside_hull(np.asarray(point, dtype=float)[None, :], points, tol)[0])


def hull_share(points, low, high, *, samples: int = SHARE_SAMPLES, seed: int = 0) -> float:
    """The share of the box [low, high] (d entries, all varying) that the convex hull of ``points``
    (N, d) encloses, estimated on ``samples`` seeded uniform points; 0 for a flat hull (fewer than
    d + 1 points in general position enclose no volume). Above SHARE_MAX_POINTS points, the hull of a
    seeded subset: a lower bound."""
    points = np.atleast_2d(np.asarray(points, dtype=float))
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    d = low.size
    if d == 0 or points.shape[0] <= d:
        return 0.0
    points = np.unique(points, axis=0)
    rng = np.random.default_rng(seed)
    if points.shape[0] > SHARE_MAX_POINTS:
        points = points[np.sort(rng.choice(points.shape[0], SHARE_MAX_POINTS, replace=False))]
    unit = (points - low) / (high - low)  # hull membership is unchanged by scaling every entry to [0, 1]
    # A flat hull: no uniform point lies on its subspace, so the share is 0.
    return float(inside_hull(rng.random((samples, d)), unit, tol=1e-9, facets=False).mean())

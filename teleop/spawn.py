"""Where each episode's object (and goal) starts.

MetaWorld draws a task's spawn as a "random vector" (``rand_vec``) inside the
task's ``_random_reset_space`` box: for most tasks the object's xyz followed by
the goal's xyz (what each entry moves, task by task: :mod:`teleop.spawn_dims`). Two strategies pick the vector for episode ``i``:

* ``random``: independent uniform draws, ``rng = default_rng(seed_i)``.
* ``stratified``: point ``i`` of a scrambled Halton sequence (scrambled by the
  base seed), so that N episodes cover the box evenly instead of clumping.
* ``chebyshev``: the same points, each coordinate ``u`` mapped to
  ``(1 - cos(pi u)) / 2``, the Chebyshev (arcsine) density: more spawns near the
  faces of the box, fewer in its middle. Uniform evaluation spawns near a face
  lie outside the hull of evenly spread training spawns, where a policy
  extrapolates; this puts more of them inside. Measured at 20 demos, a trade
  between tasks that fail at the faces and those that fail inside
  (BENCHMARKS.md, "Spawns spread toward the faces"), so not the default.

Episode ``i`` of a stream with base seed ``s`` gets the seed ``s + i``. The
vector actually used (after the task's own rejection of invalid spawns, e.g.
pick-place's goal too close to the object) is recorded in every episode file;
freezing it and resetting reproduces the initial state exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from teleop.hull import hull_share

STRATEGIES = ("random", "stratified", "chebyshev", "fixed")
FRESH_STRATEGIES = tuple(s for s in STRATEGIES if s != "fixed")  # a new spawn every episode: for collection
DEFAULT_STRATEGY = "stratified"


@dataclass(frozen=True)
class Spawn:
    """A spawn request: the candidate vector and where it came from."""

    seed: int  # the episode seed; also seeds redraws if the task rejects the candidate
    index: int  # position in the stream
    strategy: str
    candidate: np.ndarray  # (D,) proposed rand_vec inside the task's spawn box

    def redraw_rng(self) -> np.random.Generator:
        """The generator for redraws when the task rejects the candidate."""
        return np.random.default_rng([self.seed, 1])


class SpawnStream:
    """Seed-reproducible spawns for one task: ``stream[i]`` is always the same."""

    def __init__(self, low, high, *, strategy: str = "random", base_seed: int = 0):
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown spawn strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
        if base_seed < 0:
            raise ValueError(f"seed must be >= 0, got {base_seed}")
        self.low = np.asarray(low, dtype=np.float64)
        self.high = np.asarray(high, dtype=np.float64)
        self.strategy = strategy
        self.base_seed = int(base_seed)
        # Only the dimensions that actually vary need a sequence dimension.
        self._varying = np.flatnonzero(self.high > self.low)
        self._halton = None

    def __getitem__(self, index: int) -> Spawn:
        if index < 0:
            raise IndexError(index)
        seed = self.base_seed + int(index)
        if self.strategy == "random":
            unit = np.random.default_rng(seed).uniform(size=self.low.shape)
        elif self.strategy == "fixed":
            unit = np.random.default_rng(self.base_seed).uniform(size=self.low.shape)
        else:
            unit = np.zeros(self.low.shape)
            unit[self._varying] = self._halton_point(index)
            if self.strategy == "chebyshev":
                unit = chebyshev_spread(unit)
        candidate = self.low + unit * (self.high - self.low)
        return Spawn(seed=seed, index=int(index), strategy=self.strategy, candidate=candidate)

    def _halton_point(self, index: int) -> np.ndarray:
        from scipy.stats import qmc  # only the stratified strategy needs scipy

        if self._halton is None:
            self._halton = qmc.Halton(d=max(1, self._varying.size), scramble=True, seed=self.base_seed)
        self._halton.reset()
        if index:
            self._halton.fast_forward(index)
        return self._halton.random(1)[0][: self._varying.size]


def chebyshev_spread(unit: np.ndarray) -> np.ndarray:
    """Map points of [0, 1] (evenly spread) to the Chebyshev density 1 / (pi sqrt(u (1 - u))): the ends
    and the middle stay where they are, and a fifth of the points land within 2.5% of either end."""
    return 0.5 - 0.5 * np.cos(np.pi * np.asarray(unit, dtype=np.float64))


def grid_coverage(points: np.ndarray, low, high) -> tuple[float, int]:
    """Fraction of the cells of a k^d grid over the box that hold at least one point.

    k is chosen so that the grid has about as many cells as there are points
    (at least 2 per varying axis), so a perfectly even layout scores near 1 and
    independent uniform draws about 0.63, whatever the number of points.
    Returns (fraction, k).
    """
    points = np.atleast_2d(np.asarray(points, dtype=np.float64))
    low = np.asarray(low, dtype=np.float64)
    high = np.asarray(high, dtype=np.float64)
    varying = np.flatnonzero(high - low > 1e-12)
    if points.shape[0] == 0 or varying.size == 0:
        return 0.0, 0
    d = varying.size
    k = max(2, int(np.floor(points.shape[0] ** (1.0 / d))))
    unit = (points[:, varying] - low[varying]) / (high[varying] - low[varying])
    cells = np.clip((unit * k).astype(int), 0, k - 1)
    occupied = {tuple(c) for c in cells}
    return len(occupied) / float(k**d), k


# Spawns closer than this (metres, on every varying entry) count as the same spawn.
SAME_SPAWN_TOLERANCE = 1e-4


@dataclass(frozen=True)
class SpawnDiversity:
    """How varied a dataset's spawns are, over every entry of the random vector the task randomizes
    (object and goal alike: a task that keeps its object in one place and moves the goal is diverse)."""

    episodes: int
    distinct: int  # spawns that differ by more than SAME_SPAWN_TOLERANCE on some entry the task uses
    names: tuple[str, ...]  # the varying entries, e.g. ("object x", "object y", "goal x", ...)
    minimum: np.ndarray  # (d,) per varying entry
    maximum: np.ndarray  # (d,)
    std: np.ndarray  # (d,)
    coverage: float  # fraction of grid cells over the varying part of the spawn box that hold a spawn
    grid: int  # cells per varying entry of that grid
    extent: float  # fraction of the spawn box's volume spanned by the spawns' bounding box
    # Share of the box (over the entries the task uses) inside the spawns' convex hull: about the share
    # of act-eval's uniform spawns that a policy trained on them meets inside (teleop.hull.hull_share).
    hull: float = 0.0

    @property
    def degenerate(self) -> bool:
        """Every episode starts from (nearly) the same spawn."""
        return self.episodes >= 2 and self.distinct <= 1

    @property
    def few(self) -> bool:
        """Fewer distinct spawns than a policy needs to see the spawn box (but more than one)."""
        return not self.degenerate and self.distinct < min(self.episodes, 10)

    def warning(self) -> str | None:
        if self.degenerate:
            spread = f"std {np.max(self.std):.1e}" if self.std.size else "nothing varies"
            return (f"all {self.episodes} episodes start from the same spawn ({', '.join(self.names) or 'the task'}: "
                    f"{spread}): a policy trained on them can reach a low loss and still fail on every random "
                    "spawn. Record with fresh spawns (the default) instead.")
        if self.few:
            return (f"only {self.distinct} distinct spawns in {self.episodes} episodes: "
                    "expect poor generalization to random spawns")
        return None


def spawn_diversity(rand_vecs, low, high, *, task: str | None = None) -> SpawnDiversity:
    """Diversity of a dataset's spawns: rand_vecs (N, D), the recorded random vectors, in the task's
    spawn box (low, high); only the entries the box lets vary count. ``task`` names them, and says
    which the task ignores (reach-v3's puck): spawns that differ only there are the same spawn."""
    from teleop.spawn_dims import dimension_names, used, varying

    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    vecs = np.asarray(rand_vecs, dtype=np.float64).reshape(-1, low.size)
    axes = varying(low, high)
    names = tuple(dimension_names(task or "", low.size)[i] for i in axes)
    n = vecs.shape[0]
    if n == 0:
        zero = np.zeros(axes.size)
        return SpawnDiversity(0, 0, names, zero, zero, zero, 0.0, 0, 0.0)
    points = vecs[:, axes]
    coverage, grid = grid_coverage(vecs, low, high)
    spans = (points.max(axis=0) - points.min(axis=0)) / (high - low)[axes]
    extent = float(np.prod(spans)) if spans.size else 0.0
    mattering = [k for k, keep in enumerate(used(names)) if keep] or list(range(len(names)))
    hull = hull_share(points[:, mattering], low[axes][mattering], high[axes][mattering])
    return SpawnDiversity(n, _count_distinct(points[:, mattering]), names, points.min(axis=0),
                          points.max(axis=0), points.std(axis=0), coverage, grid, extent, hull)


def _count_distinct(points: np.ndarray) -> int:
    if points.shape[1] == 0:
        return 1 if points.shape[0] else 0
    keys = np.round(points / SAME_SPAWN_TOLERANCE).astype(np.int64)
    return len({tuple(k) for k in keys})

"""Fresh, distinct and seed-reproducible spawns; the spawn trap is gone."""

import numpy as np
import pytest

from teleop.env import TaskEnv
from teleop.spawn import DEFAULT_STRATEGY, STRATEGIES, SpawnStream, chebyshev_spread, grid_coverage, spawn_diversity


@pytest.fixture(scope="module")
def env():
    e = TaskEnv("pick-place-v3")
    yield e
    e.close()


@pytest.mark.parametrize("strategy", ["random", "stratified", "chebyshev"])
def test_every_reset_gets_a_new_spawn_inside_the_box(env, strategy):
    stream = SpawnStream(env.spawn_low, env.spawn_high, strategy=strategy, base_seed=7)
    objects = []
    for i in range(12):
        obs = env.reset(stream[i])
        objects.append(obs[4:7].copy())
        assert np.all(env.rand_vec >= env.spawn_low - 1e-12) and np.all(env.rand_vec <= env.spawn_high + 1e-12)
        np.testing.assert_array_equal(obs[4:7], env.rand_vec[:3])
    objects = np.array(objects)
    assert len({tuple(np.round(o, 6)) for o in objects}) == 12
    assert objects[:, 0].std() > 0.02  # x spans a 0.2 m range


@pytest.mark.parametrize("strategy", ["random", "stratified", "chebyshev"])
def test_spawns_are_reproducible_from_the_seed(env, strategy):
    a = SpawnStream(env.spawn_low, env.spawn_high, strategy=strategy, base_seed=11)
    b = SpawnStream(env.spawn_low, env.spawn_high, strategy=strategy, base_seed=11)
    first = [env.reset(a[i]).copy() for i in range(5)]
    again = [env.reset(b[i]).copy() for i in (4, 3, 2, 1, 0)][::-1]  # order does not matter
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x, y)
    other = SpawnStream(env.spawn_low, env.spawn_high, strategy=strategy, base_seed=12)
    assert not np.array_equal(env.reset(other[0])[4:7], first[0][4:7])


def test_recorded_rand_vec_reproduces_the_initial_observation(env):
    stream = SpawnStream(env.spawn_low, env.spawn_high, strategy="random", base_seed=5)
    obs = env.reset(stream[3]).copy()
    vec = env.rand_vec.copy()
    env.reset(stream[4])
    np.testing.assert_array_equal(env.reset(rand_vec=vec), obs)


def test_rejected_candidates_are_redrawn_reproducibly(env):
    """pick-place rejects a goal within 0.15 m of the object; such a candidate must not hang or repeat."""
    stream = SpawnStream(env.spawn_low, env.spawn_high, strategy="random", base_seed=0)
    spawn = stream[0]
    bad = spawn.candidate.copy()
    bad[3:5] = bad[0:2]  # goal right on top of the object
    spawn = type(spawn)(seed=spawn.seed, index=0, strategy="random", candidate=bad)
    obs1 = env.reset(spawn).copy()
    assert np.linalg.norm(env.rand_vec[:2] - env.rand_vec[3:5]) >= 0.15
    np.testing.assert_array_equal(env.reset(spawn), obs1)


def test_stratified_covers_the_box_better_than_random():
    low, high = np.array([-0.1, 0.6, 0.02]), np.array([0.1, 0.7, 0.02])
    cover = {}
    for strategy in ("random", "stratified"):
        values = []
        for seed in range(8):
            s = SpawnStream(low, high, strategy=strategy, base_seed=seed * 1000)
            values.append(grid_coverage(np.array([s[i].candidate for i in range(25)]), low, high)[0])
        cover[strategy] = np.mean(values)
    assert cover["stratified"] > cover["random"] + 0.1


def test_chebyshev_spreads_the_stratified_points_toward_the_faces():
    """Same Halton points, each coordinate through (1 - cos(pi u)) / 2: in the box, more near its faces,
    and 20 of them enclose far more of the box than 20 evenly spread ones (uniform evaluation spawns
    near a face are outside the hull of even training spawns, where a policy extrapolates)."""
    from scipy.spatial import Delaunay

    assert "chebyshev" in STRATEGIES and DEFAULT_STRATEGY == "stratified"
    np.testing.assert_allclose(chebyshev_spread(np.array([0.0, 0.5, 1.0])), [0.0, 0.5, 1.0], atol=1e-15)
    low, high = np.array([-0.1, 0.6, 0.0, 0.02]), np.array([0.1, 0.8, 0.3, 0.02])  # last entry fixed
    unseen = np.random.default_rng(123).uniform(low, high, size=(2000, 4))[:, :3]
    for seed in range(3):
        even = SpawnStream(low, high, strategy="stratified", base_seed=seed)
        spread = SpawnStream(low, high, strategy="chebyshev", base_seed=seed)
        a = np.array([even[i].candidate for i in range(20)])
        b = np.array([spread[i].candidate for i in range(20)])
        np.testing.assert_allclose(b, low + chebyshev_spread((a - low) / np.where(high > low, high - low, 1))
                                   * (high - low), atol=1e-12)
        assert np.all(b >= low) and np.all(b <= high) and np.all(b[:, 3] == 0.02)
        near_face = lambda p: np.mean(np.minimum(p - low, high - p)[:, :3] / (high - low)[:3] < 0.05)
        assert near_face(b) > 2 * near_face(a)
        inside = [(Delaunay(p[:, :3]).find_simplex(unseen) >= 0).mean() for p in (a, b)]
        assert inside[1] > 1.3 * inside[0], inside


def test_fixed_strategy_is_flagged_as_degenerate():
    low, high = np.array([-0.1, 0.6, 0.02]), np.array([0.1, 0.7, 0.02])
    s = SpawnStream(low, high, strategy="fixed", base_seed=3)
    vecs = np.array([s[i].candidate for i in range(20)])
    d = spawn_diversity(vecs, low, high)
    assert d.degenerate and d.distinct == 1
    assert "same spawn" in d.warning()
    s = SpawnStream(low, high, strategy="random", base_seed=3)
    vecs = np.array([s[i].candidate for i in range(20)])
    assert spawn_diversity(vecs, low, high).warning() is None


def test_unknown_task_and_camera_errors_name_the_fix():
    from teleop.env import CameraError, TaskError

    with pytest.raises(TaskError, match="pick-place-v3"):
        TaskEnv("pick-plase-v3")
    with pytest.raises(CameraError, match="corner2"):
        TaskEnv("reach-v3", cameras=("front",))

"""Wilson intervals and the training/evaluation spawn relation."""

import numpy as np
import pytest

from act.coverage import relate
from act.metrics import summarize, wilson_interval
from teleop.hull import SHARE_MAX_POINTS, hull_share, in_hull, inside_hull


@pytest.mark.parametrize("k,n,expected", [
    # Reference values from the closed form (Wilson 1927), z = 1.96.
    (0, 50, (0.0, 0.0714)),
    (50, 50, (0.9286, 1.0)),
    (25, 50, (0.3664, 0.6336)),
    (47, 50, (0.8378, 0.9794)),
])
def test_wilson_interval_matches_reference_values(k, n, expected):
    low, high = wilson_interval(k, n)
    assert low == pytest.approx(expected[0], abs=5e-4)
    assert high == pytest.approx(expected[1], abs=5e-4)


def test_wilson_interval_narrows_with_more_trials_and_contains_the_estimate():
    a = wilson_interval(9, 10)
    b = wilson_interval(90, 100)
    assert a[0] < 0.9 < a[1] and b[0] < 0.9 < b[1]
    assert (b[1] - b[0]) < (a[1] - a[0])
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_summary_reports_rates_means_and_steps_to_success():
    eps = [dict(success=True, length=60, final_obj_to_target=0.01, total_reward=500.0, steps_to_success=50),
           dict(success=False, length=500, final_obj_to_target=0.2, total_reward=100.0, steps_to_success=None)]
    s = summarize(eps)
    assert s["successes"] == 1 and s["success_rate"] == 0.5
    assert s["mean_length"] == 280 and s["mean_steps_to_success"] == 50
    assert s["success_ci95"][0] < 0.5 < s["success_ci95"][1]


def test_hull_handles_area_segment_and_point():
    square = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], float)
    assert in_hull([0.5, 0.5], square) and in_hull([1.0, 0.5], square)
    assert not in_hull([1.2, 0.5], square)
    segment = np.array([[0, 0], [1, 1]], float)
    assert in_hull([0.5, 0.5], segment) and not in_hull([0.5, 0.6], segment) and not in_hull([2, 2], segment)
    point = np.array([[0.3, 0.3], [0.3, 0.3]])
    assert in_hull([0.3, 0.3], point) and not in_hull([0.31, 0.3], point)


def test_hull_of_many_queries_agrees_with_the_facets():
    rng = np.random.default_rng(3)
    points, queries = rng.random((30, 3)), rng.uniform(-0.2, 1.2, (400, 3))
    from scipy.spatial import ConvexHull

    eq = ConvexHull(points).equations
    by_facets = np.all(queries @ eq[:, :-1].T + eq[:, -1] <= 0, axis=1)
    inside = inside_hull(queries, points)
    assert 0 < inside.sum() < len(queries)
    assert np.array_equal(inside, by_facets)
    assert [in_hull(q, points) for q in queries[:20]] == list(inside[:20])


def test_hull_share_is_the_enclosed_volume_of_the_box():
    low, high = np.array([-0.1, 0.6]), np.array([0.1, 0.7])
    corners = np.array([[-0.1, 0.6], [0.1, 0.6], [-0.1, 0.7], [0.1, 0.7]])
    assert hull_share(corners, low, high) == 1.0
    triangle = corners[:3]  # half the box
    assert abs(hull_share(triangle, low, high) - 0.5) < 0.04
    assert hull_share(np.tile(corners[0], (20, 1)), low, high) == 0.0  # one spawn encloses nothing
    assert hull_share(corners[[0, 3]], low, high) == 0.0  # a segment neither
    # More uniform points enclose more of the box; past the cap a subset's hull gives a lower bound.
    rng = np.random.default_rng(0)
    many = rng.uniform(low, high, (SHARE_MAX_POINTS + 200, 2))
    few, capped = hull_share(many[:20], low, high), hull_share(many, low, high)
    assert few < capped <= 1.0 and capped > 0.9


def test_single_spawn_training_puts_every_random_eval_spawn_outside():
    low, high = np.array([-0.1, 0.6, 0.02]), np.array([0.1, 0.7, 0.02])
    train = np.tile([0.0, 0.65, 0.02], (20, 1))
    evals = np.random.default_rng(0).uniform(low, high, size=(50, 3))
    rel = relate(train, evals, low, high)
    assert not rel.inside_hull.any()
    assert list(rel.axes) == [0, 1]
    assert np.all(rel.nearest_train_distance > 0)
    diverse = np.random.default_rng(1).uniform(low, high, size=(200, 3))
    rel = relate(diverse, evals, low, high)
    assert rel.inside_hull.mean() > 0.8


def test_act_eval_advises_more_data_only_for_a_full_run_between_a_fifth_and_ninety_percent():
    from act.evaluate import _advice

    report = {"task": "push-back-v3", "trained_task": "push-back-v3", "shard": None, "checkpoint_step": 3000,
              "checkpoint": "runs/pb/latest.pt", "train_spawns": [[0.0, 0.6]] * 18,
              "summary": {"successes": 79, "episodes": 100}}
    line = _advice(report, "evals/pb")
    assert line.startswith("79/100 (79%) from 18 training episodes")
    assert line.endswith("`teleop correct --ckpt runs/pb/latest.pt --spawns-from evals/pb --failures-only`")
    for change in ({"summary": {"successes": 90, "episodes": 100}},  # at 90%: nothing to advise
                   {"summary": {"successes": 10, "episodes": 100}},  # a failed run: another seed first
                   {"checkpoint_step": 1200},  # short of training, maybe not of data
                   {"summary": {"successes": 5, "episodes": 10}},  # too few episodes to say
                   {"task": "push-v3"},  # evaluated on another task
                   {"shard": [0, 2]}):  # a shard sees part of the evaluation
        assert _advice({**report, **change}, "evals/pb") is None, change


def test_act_eval_names_chebyshev_spawns_when_the_failures_lie_outside_the_training_hull():
    from act.evaluate import _advice

    def report(inside, outside):  # (episodes, successes) inside / outside the training spawns' hull
        return {"task": "reach-wall-v3", "trained_task": "reach-wall-v3", "shard": None, "checkpoint_step": 3000,
                "checkpoint": "runs/rw/latest.pt", "train_spawns": [[0.0, 0.9, 0.1]] * 18,
                "summary": {"successes": inside[1] + outside[1], "episodes": inside[0] + outside[0]},
                "coverage": {"inside": {"episodes": inside[0], "successes": inside[1]},
                             "outside": {"episodes": outside[0], "successes": outside[1]}}}

    line = _advice(report((28, 27), (72, 50)), "evals/rw")  # reach-wall at the default: 22 of 23 outside
    assert "22 of the 23 failures lie outside the training spawns' hull" in line and "--spawn chebyshev" in line
    assert line.endswith("--failures-only`")
    inside = _advice(report((29, 20), (71, 69)), "evals/r")  # 9 of 11 inside: more spawns in the middle, not fewer
    assert inside.startswith("89/100") and "chebyshev" not in inside
    already = _advice({**report((28, 27), (72, 50)), "train_spawn_strategies": ["chebyshev"]}, "evals/rw")
    assert already.startswith("77/100") and "chebyshev" not in already  # the demos were recorded that way
    mixed = _advice({**report((28, 27), (72, 50)), "train_spawn_strategies": ["chebyshev", "stratified"]}, "e")
    assert "--spawn chebyshev" in mixed

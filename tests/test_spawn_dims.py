"""A spawn is every entry of the random vector the task randomizes: the object's and the goal's alike.

Seen: act-train refused assembly-v3 and plate-slide-v3 ("all 18 training episodes start from the same
object position") although their goals vary every episode, and inspect reported reach-v3's unused puck.
"""

import numpy as np
import pytest

from cli_helpers import run_cli
from teleop.spawn import SpawnStream, spawn_diversity
from teleop.spawn_dims import dimension_names, object_used, plane
from teleop.spawn_survey import measure


@pytest.mark.parametrize("task", ["plate-slide-v3", "assembly-v3", "reach-v3"])
def test_the_table_names_what_each_entry_moves(task):
    names = dimension_names(task, 6)
    assert names == measure(task, samples=8)
    if task == "reach-v3":
        assert names[3:] == ["goal x", "goal y", "goal z"]
        assert all(n.endswith("(unused by the task)") for n in names[:2])  # the puck it never touches
        assert [n for _, n in plane(task, *_box(task))] == ["goal x", "goal y"]
        assert not object_used(task)  # the live window shows no hand-object distance
    else:
        assert [n for _, n in plane(task, *_box(task))][0].startswith("goal")  # the object never moves
        assert object_used(task)  # it stays put, but the task moves it


def _box(task):
    from teleop.env import spawn_box

    return spawn_box(task)


def test_a_goal_only_task_is_diverse_and_a_single_spawn_is_not():
    low, high = _box("plate-slide-v3")
    stream = SpawnStream(low, high, strategy="stratified", base_seed=0)
    varied = spawn_diversity([stream[i].candidate for i in range(12)], low, high, task="plate-slide-v3")
    assert not varied.degenerate and varied.distinct == 12 and varied.warning() is None
    assert all(name.startswith("goal") for name in varied.names)
    same = spawn_diversity([stream[0].candidate] * 12, low, high, task="plate-slide-v3")
    assert same.degenerate and "goal x" in same.warning()


def test_spawns_that_differ_only_where_the_task_does_not_look_are_one_spawn():
    low, high = _box("reach-v3")
    rng = np.random.default_rng(0)
    vectors = np.repeat(((low + high) / 2)[None], 10, axis=0)
    vectors[:, :2] = rng.uniform(low[:2], high[:2], size=(10, 2))  # only the unused puck moves
    diversity = spawn_diversity(vectors, low, high, task="reach-v3")
    assert diversity.degenerate and "goal x" in diversity.names


def test_the_hull_share_is_over_the_entries_the_task_uses():
    """reach-v3's hull is its goals' (the puck it ignores adds nothing), spread spawns enclose more of the box,
    and one spawn encloses none of it."""
    low, high = _box("reach-v3")
    share = {}
    for strategy in ("stratified", "chebyshev"):
        stream = SpawnStream(low, high, strategy=strategy, base_seed=0)
        vectors = np.array([stream[i].candidate for i in range(20)])
        share[strategy] = spawn_diversity(vectors, low, high, task="reach-v3").hull
        goals_only = vectors.copy()
        goals_only[:, :2] = (low[:2] + high[:2]) / 2  # the same goals, the puck held still
        assert spawn_diversity(goals_only, low, high, task="reach-v3").hull == share[strategy]
    assert 0.2 < share["stratified"] < share["chebyshev"] < 1.0
    assert spawn_diversity([(low + high) / 2] * 20, low, high, task="reach-v3").hull == 0.0


def test_act_train_accepts_goal_only_diversity_and_inspect_names_the_entries(tmp_path):
    from act.data import check_spawn_diversity, load_dataset

    out = tmp_path / "plate"
    record = run_cli("teleop.cli", "record", "--device", "scripted", "--task", "plate-slide-v3", "--episodes", "4",
                     "--out", str(out), "--quiet")
    assert record.returncode == 0, record.stderr
    assert "WARNING" not in record.stderr
    dataset = load_dataset([out])
    assert not check_spawn_diversity(dataset.episodes, dataset, allow_single_spawn=False).degenerate
    report = run_cli("teleop.cli", "inspect", str(out))
    assert report.returncode == 0, report.stderr
    for name in ("goal x", "goal y", "distinct spawns: 4 of 4", "convex hull of the spawns: "):
        assert name in report.stdout
    header, *rows = report.stdout.splitlines()[:5]
    assert header.endswith("spawn (goal x, goal y)")  # each episode's row: what differs between spawns
    assert len({row.split("(")[-1] for row in rows}) == 4
    assert "object x" not in report.stdout  # the puck starts in one place: not a randomized entry


def test_reach_never_reads_its_puck():
    """What the table's "(unused by the task)" rests on: moving the puck changes no reward and no success."""
    from teleop.env import TaskEnv
    from teleop.spawn import Spawn

    with TaskEnv("reach-v3") as env:
        base = SpawnStream(env.spawn_low, env.spawn_high, strategy="random", base_seed=1)[0].candidate
        moved = base.copy()
        moved[:2] = env.spawn_low[:2] + 0.3 * (env.spawn_high[:2] - env.spawn_low[:2])  # the puck elsewhere
        runs = []
        for vector in (base, moved):
            obs = env.reset(Spawn(seed=1, index=0, strategy="random", candidate=vector))
            assert np.allclose(env.rand_vec, vector)
            rewards = []
            for _ in range(60):  # toward the goal, never below 10 cm: the hand cannot touch the puck
                target = np.array([*obs[36:38], max(obs[38], 0.1)])
                action = np.append(np.clip((target - obs[:3]) * 10, -1, 1), -1.0)
                obs, reward, success, _, _ = env.step(action)
                rewards.append((reward, success))
            runs.append(rewards)
        # The same to rounding: the puck's contacts with the table change the solver's arithmetic a little.
        assert [r for r, _ in runs[0]] == pytest.approx([r for r, _ in runs[1]], rel=1e-9)
        assert [s for _, s in runs[0]] == [s for _, s in runs[1]] and any(s for _, s in runs[0])


def test_act_eval_compares_spawns_on_the_goal_where_only_the_goal_moves():
    from act.coverage import relate

    low, high = _box("plate-slide-v3")
    train = [SpawnStream(low, high, strategy="stratified", base_seed=0)[i].candidate for i in range(30)]
    evals = [SpawnStream(low, high, strategy="random", base_seed=99)[i].candidate for i in range(40)]
    relation = relate(train, evals, low, high, task="plate-slide-v3")
    assert relation.names == ("goal x", "goal y") and relation.inside_hull.mean() > 0.5
    single = relate([train[0]] * 30, evals, low, high, task="plate-slide-v3")
    assert not single.inside_hull.any() and single.nearest_train_distance.min() > 0

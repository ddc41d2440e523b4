"""`teleop merge`: two operators' sessions into one dataset, and the merges it must refuse."""

import json
import shutil

import h5py
import pytest

from cli_helpers import run_cli, run_operator_sessions
from teleop.episode import episode_files, read_attrs

PLAN = """\
name = "merge-test"
operators = ["alice", "bob"]
device = "scripted"

[[task]]
name = "reach-v3"
episodes = 2

[[task]]
name = "push-v3"
episodes = 3
"""


@pytest.fixture(scope="module")
def two_sessions(tmp_path_factory):
    """Sessions of the same plan run by alice and by bob (as if on two machines)."""
    return tuple(run_operator_sessions(tmp_path_factory.mktemp("sessions"), PLAN))


def _copy(src, folder, name="episode_000000.hdf5", **attrs):
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    shutil.copyfile(src, target)
    with h5py.File(target, "a") as f:
        for key, value in attrs.items():
            f.attrs[key] = value
    return folder


def test_two_operators_merge_into_one_dataset_that_inspect_reports_per_operator(two_sessions, tmp_path):
    alice, bob = two_sessions
    out = tmp_path / "merged"
    res = run_cli("teleop.cli", "merge", str(alice), str(bob), "--task", "push-v3", "--out", str(out))
    assert res.returncode == 0, res.stderr
    files = episode_files(out)
    assert [p.name for p in files] == [f"episode_{i:06d}.hdf5" for i in range(6)]
    attrs = [read_attrs(p) for p in files]
    assert [a["operator"] for a in attrs] == ["alice"] * 3 + ["bob"] * 3
    assert len({a["seed"] for a in attrs}) == 6 and len({a["session"] for a in attrs}) == 2
    sources = {a["source_file"] for a in attrs}
    assert len(sources) == 6 and all("/push-v3/episode_" in s for s in sources)
    manifest = json.loads((out / "merge.json").read_text())
    assert manifest["task"] == "push-v3" and len(manifest["episodes"]) == 6
    assert {e["operator"] for e in manifest["episodes"]} == {"alice", "bob"}
    assert all(e["hostname"] and e["session"] and len(e["actions_sha256"]) == 64 for e in manifest["episodes"])
    assert not list(out.glob(".*partial"))

    ins = run_cli("teleop.cli", "inspect", str(out), "--no-plot")
    assert ins.returncode == 0, ins.stderr
    assert "operator alice: 3 episodes, 3 successful" in ins.stdout
    assert "operator bob: 3 episodes, 3 successful" in ins.stdout
    assert "distinct spawns: 6 of 6" in ins.stdout
    assert ins.stdout.count("1 session(s) on") == 2

    again = run_cli("teleop.cli", "merge", str(alice), "--task", "push-v3", "--out", str(out))
    assert again.returncode == 2 and "already holds episodes" in again.stderr


def test_merge_filters_by_operator_steps_and_success(two_sessions, tmp_path):
    alice, bob = two_sessions
    res = run_cli("teleop.cli", "merge", str(alice), str(bob), "--task", "reach-v3", "--operator", "bob",
                  "--out", str(tmp_path / "bob"))
    assert res.returncode == 0, res.stderr
    assert {read_attrs(p)["operator"] for p in episode_files(tmp_path / "bob")} == {"bob"}
    assert len(episode_files(tmp_path / "bob")) == 2

    steps = sorted(int(read_attrs(p)["num_steps"]) for p in episode_files(alice / "push-v3"))
    res = run_cli("teleop.cli", "merge", str(alice / "push-v3"), "--min-steps", str(steps[1]),
                  "--max-steps", str(steps[2]), "--out", str(tmp_path / "steps"))
    assert res.returncode == 0, res.stderr
    kept = sorted(int(read_attrs(p)["num_steps"]) for p in episode_files(tmp_path / "steps"))
    assert kept == [s for s in steps if steps[1] <= s <= steps[2]]  # ties with steps[1] are kept too
    assert steps[0] not in kept or steps[0] == steps[1]

    failed = _copy(episode_files(bob / "push-v3")[0], tmp_path / "failed", success=False)
    res = run_cli("teleop.cli", "merge", str(alice / "push-v3"), str(failed), "--success-only",
                  "--out", str(tmp_path / "ok"))
    assert res.returncode == 0, res.stderr
    assert len(episode_files(tmp_path / "ok")) == 3

    none = run_cli("teleop.cli", "merge", str(alice / "push-v3"), "--min-steps", "100000", "--out", str(tmp_path / "x"))
    assert none.returncode == 2 and "passes the filters" in none.stderr


def test_merging_different_tasks_is_refused_with_the_reason(two_sessions, tmp_path):
    alice, bob = two_sessions
    res = run_cli("teleop.cli", "merge", str(alice), str(bob), "--out", str(tmp_path / "m"))
    assert res.returncode == 2
    assert "several tasks: push-v3 (6), reach-v3 (4)" in res.stderr and "--task" in res.stderr
    assert not (tmp_path / "m").exists()


def test_duplicate_seeds_are_refused_unless_skipped(two_sessions, tmp_path):
    alice, _ = two_sessions
    res = run_cli("teleop.cli", "merge", str(alice / "push-v3"), str(alice / "push-v3"), "--out", str(tmp_path / "m"))
    assert res.returncode == 2 and "same seed" in res.stderr and "3 duplicate(s)" in res.stderr
    assert not (tmp_path / "m").exists()
    res = run_cli("teleop.cli", "merge", str(alice / "push-v3"), str(alice / "push-v3"), "--skip-duplicates",
                  "--out", str(tmp_path / "m"))
    assert res.returncode == 0, res.stderr
    assert len(episode_files(tmp_path / "m")) == 3 and res.stderr.count("skipped duplicate") == 3


def test_the_same_actions_under_another_seed_are_a_duplicate(two_sessions, tmp_path):
    alice, _ = two_sessions
    copy = _copy(episode_files(alice / "push-v3")[1], tmp_path / "copy", seed=12345)
    res = run_cli("teleop.cli", "merge", str(alice / "push-v3"), str(copy), "--out", str(tmp_path / "m"))
    assert res.returncode == 2 and "same actions" in res.stderr and "episode_000001.hdf5" in res.stderr


def test_other_schema_or_simulator_version_is_refused(two_sessions, tmp_path):
    alice, bob = two_sessions
    other_schema = _copy(episode_files(bob / "push-v3")[0], tmp_path / "schema2", schema="teleop-episode/99")
    res = run_cli("teleop.cli", "merge", str(alice / "push-v3"), str(other_schema), "--out", str(tmp_path / "m"))
    assert res.returncode == 2 and "schema 'teleop-episode/99' is not supported" in res.stderr

    versions = dict(read_attrs(episode_files(bob / "push-v3")[0])["versions"], mujoco="3.9.9")
    other_sim = _copy(episode_files(bob / "push-v3")[0], tmp_path / "sim", versions=json.dumps(versions))
    res = run_cli("teleop.cli", "merge", str(alice / "push-v3"), str(other_sim), "--out", str(tmp_path / "m"))
    assert res.returncode == 2 and "different simulator versions" in res.stderr and "mujoco 3.9.9" in res.stderr
    assert not (tmp_path / "m").exists()

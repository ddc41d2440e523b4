"""act-eval: honest metrics on unseen spawns, reproducible for any worker count, with videos."""

import json

import pytest

from act_helpers import TINY_MODEL
from cli_helpers import load_benchmark, run_cli

FAST = ["--episodes", "4", "--batch-size", "2", "--max-steps", "30"]


@pytest.fixture(scope="module")
def tiny_run(pick_place_demos, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval_run") / "run"
    res = run_cli("act.train", "--data", str(pick_place_demos), "--out", str(out), "--steps", "6",
                  "--val-every", "3", "--checkpoint-every", "3", *TINY_MODEL)
    assert res.returncode == 0, res.stderr
    return out


def _eval(tiny_run, out, *extra):
    res = run_cli("act.evaluate", "--ckpt", str(tiny_run), "--out", str(out), *FAST, *extra)
    return res, (json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else None)


def test_eval_writes_every_artifact_and_is_reproducible(tiny_run, tmp_path):
    res, first = _eval(tiny_run, tmp_path / "a", "--videos", "1", "--seed", "5000000")
    assert res.returncode == 0, res.stderr
    assert "success" in res.stdout and "95% CI" in res.stdout
    a = tmp_path / "a"
    for name in ("results.json", "results.md", "spawn_coverage.png", "final_frames.png"):
        assert (a / name).stat().st_size > 500, name
    assert len(first["episodes"]) == 4
    e = first["episodes"][0]
    for key in ("seed", "spawn", "success", "length", "final_obj_to_target", "total_reward",
                "nearest_train_distance", "inside_train_hull"):
        assert key in e
    assert [e["seed"] for e in first["episodes"]] == [5000000 + i for i in range(4)]
    assert first["train_spawn_strategies"] == ["stratified"]  # the recorder's default, kept in the checkpoint
    from teleop.video import read_video, video_info

    info = video_info(a / "videos" / "episode_000.mp4")
    assert info["codec"] == "h264"
    assert read_video(a / "videos" / "episode_000.mp4").shape[0] == info["frames"] >= 5
    _, again = _eval(tiny_run, tmp_path / "b", "--videos", "0", "--seed", "5000000")
    strip = lambda r: [{k: v for k, v in e.items() if k != "video"} for e in r["episodes"]]  # noqa: E731
    assert strip(again) == strip(first)


def test_worker_count_and_sharding_do_not_change_results(tiny_run, tmp_path):
    _, one = _eval(tiny_run, tmp_path / "w1", "--videos", "0", "--workers", "1", "--query-every", "5")
    res, two = _eval(tiny_run, tmp_path / "w2", "--videos", "0", "--workers", "2", "--query-every", "5")
    assert res.returncode == 0, res.stderr
    assert one["episodes"] == two["episodes"]
    for i in range(2):
        res, _ = _eval(tiny_run, tmp_path / f"s{i}", "--videos", "0", "--query-every", "5", "--shard", f"{i}/2")
        assert res.returncode == 0, res.stderr
    merged = run_cli("act.evaluate", "merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out",
                     str(tmp_path / "m"))
    assert merged.returncode == 0, merged.stderr
    assert json.loads((tmp_path / "m" / "results.json").read_text())["episodes"] == one["episodes"]


def test_evaluation_seeds_overlapping_training_are_refused(tiny_run, tmp_path):
    res, _ = _eval(tiny_run, tmp_path / "x", "--seed", "100")  # pick_place_demos used seeds 100..105
    assert res.returncode == 2 and "used by training" in res.stderr and "--allow-seed-overlap" in res.stderr
    res, report = _eval(tiny_run, tmp_path / "y", "--seed", "100", "--allow-seed-overlap", "--videos", "0")
    assert res.returncode == 0 and report["episodes"][0]["seed"] == 100


def test_single_spawn_policy_is_shown_outside_the_training_hull(fixed_spawn_demos, tmp_path):
    run = tmp_path / "single"
    res = run_cli("act.train", "--data", str(fixed_spawn_demos), "--out", str(run), "--steps", "3",
                  "--allow-single-spawn", "--val-fraction", "0", *TINY_MODEL)
    assert res.returncode == 0, res.stderr
    res, report = _eval(run, tmp_path / "e", "--videos", "0")
    assert res.returncode == 0, res.stderr
    assert report["coverage"]["inside"]["episodes"] == 0
    assert report["coverage"]["outside"]["episodes"] == 4
    assert "outside the training spawns' hull" in res.stdout


def test_bad_checkpoints_and_cameras_are_one_line_errors(tiny_run, tmp_path):
    res = run_cli("act.evaluate", "--ckpt", str(tmp_path / "missing"), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and res.stderr.startswith("error:") and "Traceback" not in res.stderr
    truncated = tmp_path / "trunc.pt"
    truncated.write_bytes((tiny_run / "latest.pt").read_bytes()[:1000])
    res = run_cli("act.evaluate", "--ckpt", str(truncated), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    res, _ = _eval(tiny_run, tmp_path / "o", "--camera", "front")
    assert res.returncode == 2 and "corner2" in res.stderr


def test_inference_is_the_checkpoints_unless_a_flag_says_otherwise(tiny_run, tmp_path):
    res, default = _eval(tiny_run, tmp_path / "d", "--videos", "0")
    assert res.returncode == 0, res.stderr
    assert default["inference"] == {"temporal_ensemble": None, "query_every": 5}  # scripted demos
    assert "chunks, query every 5" in res.stdout
    _, ensembled = _eval(tiny_run, tmp_path / "k", "--videos", "0", "--temporal-ensemble", "-0.1")
    assert ensembled["inference"] == {"temporal_ensemble": -0.1, "query_every": None}
    for flags, problem in ((["--query-every", "2", "--temporal-ensemble", "0"], "pass one of them"),
                           (["--query-every", "0"], "must be 1..5")):
        res, report = _eval(tiny_run, tmp_path / "bad", "--videos", "0", *flags)
        assert res.returncode == 2 and problem in res.stderr and "Traceback" not in res.stderr
        assert report is None and not (tmp_path / "bad").exists()  # refused before writing anything


def test_unwritable_video_folder_still_saves_metrics(tiny_run, tmp_path):
    out = tmp_path / "v"
    out.mkdir()
    (out / "videos").write_text("a file where the video folder should be")
    res, report = _eval(tiny_run, out, "--videos", "2")
    assert res.returncode == 0, res.stderr
    assert "videos skipped" in res.stderr and len(report["episodes"]) == 4


def test_other_task_is_evaluated_with_a_warning(tiny_run, tmp_path):
    res, report = _eval(tiny_run, tmp_path / "t", "--task", "push-v3", "--videos", "0")
    assert res.returncode == 0, res.stderr
    assert "trained on pick-place-v3" in res.stderr + res.stdout and report["task"] == "push-v3"


def test_demo_fit_measures_each_chunk_position_against_the_demos(tiny_run, pick_place_demos):
    """benchmarks/demo_fit.py: position j compares the chunk predicted at step t with the demo's action t + j."""
    import numpy as np
    import torch

    from act.data import load_dataset
    from act.policy import Policy

    demo_fit = load_benchmark("demo_fit")
    policy = Policy.load(tiny_run)
    episode = load_dataset(pick_place_demos, spec=policy.spec).episodes[0]
    errors = demo_fit.chunk_errors(policy, [episode])
    assert errors.shape == (policy.model.config.chunk_size,) and np.isfinite(errors).all() and (errors > 0).all()
    state = torch.from_numpy(policy.normalizer.normalize_state(episode.state))
    chunks = policy.model.predict_chunk(state)
    actions = policy.normalizer.normalize_action(torch.from_numpy(episode.action))
    last = policy.model.config.chunk_size - 1
    expected = np.mean([(chunks[t, last, :3] - actions[t + last, :3]).abs().mean().item()
                        for t in range(episode.num_steps - last)])
    assert errors[last] == pytest.approx(expected, rel=1e-5)

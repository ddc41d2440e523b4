"""`teleop demo` runs record -> train -> eval end to end and says where everything is."""

import json

from act_helpers import TINY_MODEL
from cli_helpers import run_cli


def test_demo_pipeline_end_to_end(tmp_path):
    out = tmp_path / "demo"
    res = run_cli("teleop.cli", "demo", "--task", "reach-v3", "--demos", "3", "--steps", "4",
                  "--eval-episodes", "2", "--workers", "1", "--videos", "1", "--out", str(out),
                  "--", *TINY_MODEL, "--val-every", "2", "--checkpoint-every", "2", timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "[1/3]" in res.stdout and "[3/3]" in res.stdout
    assert "successes on unseen spawns" in res.stdout and "95% CI" in res.stdout
    report = json.loads((out / "eval" / "results.json").read_text())
    assert len(report["episodes"]) == 2 and report["task"] == "reach-v3"
    assert (out / "eval" / "spawn_coverage.png").exists() and (out / "eval" / "videos" / "episode_000.mp4").exists()
    assert (out / "run" / "loss.png").exists()
    # Evaluation seeds never overlap the recorded demonstrations.
    eval_seeds = {e["seed"] for e in report["episodes"]}
    assert not eval_seeds & {0, 1, 2}


def test_demo_refuses_an_unknown_task(tmp_path):
    res = run_cli("teleop.cli", "demo", "--task", "pick-place-v9", "--out", str(tmp_path / "x"))
    assert res.returncode == 2 and "pick-place-v3" in res.stderr

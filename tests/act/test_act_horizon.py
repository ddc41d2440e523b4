"""The evaluation horizon: a policy trained on slow demos is judged at their pace, not MetaWorld's 500 steps."""

import json

import pytest
import torch

from act_helpers import TINY_MODEL
from cli_helpers import run_cli

torch.set_num_threads(1)
ONE_EPISODE = ["--episodes", "1", "--batch-size", "1", "--videos", "0"]


def test_the_rule():
    from act.config import evaluation_horizon

    # max(500, 100 * ceil(1.5 * longest / 100)), at most what a TaskEnv runs
    assert [evaluation_horizon(n) for n in (0, 70, 333, 334, 480, 520, 1000)] == [500, 500, 500, 600, 800, 800, 1500]
    assert evaluation_horizon(40_000) == 48_000


@pytest.fixture(scope="module")
def long_run(long_demo_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("horizon") / "run"
    res = run_cli("act.train", "--data", str(long_demo_data), "--out", str(out), "--steps", "2",
                  "--val-fraction", "0", "--eval-every", "2", "--eval-episodes", "1", *TINY_MODEL)
    assert res.returncode == 0, res.stderr
    return out, res.stdout


def _eval(ckpt, out, *extra):
    res = run_cli("act.evaluate", "--ckpt", str(ckpt), "--out", str(out), *ONE_EPISODE, *extra)
    assert res.returncode == 0, res.stderr
    return res.stdout, json.loads((out / "results.json").read_text())


def test_train_stores_the_horizon_and_rolls_out_with_it(long_run):
    out, stdout = long_run
    checkpoint = torch.load(out / "latest.pt", weights_only=True)  # a plain int: still loads without code
    assert checkpoint["horizon"] == 800 and type(checkpoint["horizon"]) is int  # 1.5 x 520 = 780, rounded up
    assert max(e["recorded_steps"] for e in checkpoint["dataset"]["episodes"]) == 520
    assert "evaluation horizon 800 steps (covers the longest training demo, 520 steps" in stdout
    assert "step 2: success 0/1 on random spawns of up to 800 steps" in stdout


def test_eval_uses_the_checkpoints_horizon_unless_told(long_run, tmp_path):
    out, _ = long_run
    stdout, report = _eval(out, tmp_path / "default")
    assert report["horizon"] == {"steps": 800, "why": "covers the longest training demo, 520 steps"}
    assert "horizon           800 steps (covers the longest training demo, 520 steps)" in stdout
    assert "800 steps (covers" in (tmp_path / "default" / "results.md").read_text()
    episode = report["episodes"][0]
    assert episode["length"] == 800 or episode["success"]  # an untrained policy: the whole horizon
    stdout, report = _eval(out, tmp_path / "flag", "--max-steps", "30")
    assert report["horizon"] == {"steps": 30, "why": "--max-steps; the checkpoint's is 800"}
    assert report["episodes"][0]["length"] <= 30 and "30 steps (--max-steps" in stdout


def test_a_checkpoint_from_before_the_horizon_evaluates_at_500(long_run, tmp_path):
    out, _ = long_run
    checkpoint = torch.load(out / "latest.pt", weights_only=True)
    del checkpoint["horizon"]
    torch.save(checkpoint, tmp_path / "old.pt")
    stdout, report = _eval(tmp_path / "old.pt", tmp_path / "e")
    assert report["horizon"]["steps"] == 500 and "500 steps (MetaWorld's" in stdout
    assert report["episodes"][0]["length"] == 500 or report["episodes"][0]["success"]


def test_bad_step_limits_are_one_line_errors(long_run, tmp_path):
    out, _ = long_run
    for module, flag in (("act.evaluate", "--max-steps"), ("act.train", "--eval-max-steps")):
        args = ["--ckpt", str(out)] if module == "act.evaluate" else ["--data", str(out), *TINY_MODEL]
        res = run_cli(module, *args, "--out", str(tmp_path / "x"), flag, "48001")
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert res.stderr.strip().splitlines()[-1].startswith(f"error: {flag} 48001: must be in 1..48000")
    assert not (tmp_path / "x").exists()

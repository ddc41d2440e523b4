"""benchmarks/success.py without training: resuming skips finished cells, the table and the plot."""

import json
import types
from pathlib import Path

from cli_helpers import load_benchmark


def load_module():
    return load_benchmark("success")


def row(task, demos, successes, *, spawn="stratified", steps=3000, minutes=11.5):
    from act.metrics import wilson_interval

    return {"task": task, "demos": demos, "device": "scripted", "spawn": spawn, "steps_requested": 3000,
            "steps": steps, "train_minutes": minutes, "successes": successes, "episodes": 100,
            "success_rate": successes / 100, "success_ci95": list(wilson_interval(successes, 100)),
            "load_after_train": [2.1, 2.0, 1.9], "jobs": 2, "cores": 2}


def test_resume_runs_only_missing_cells_and_appends_them(tmp_path, monkeypatch):
    bench = load_module()
    results = tmp_path / "success.jsonl"
    results.write_text(json.dumps(row("pick-place-v3", 10, 97)) + "\n")
    ran = []

    def fake_run_cell(cell, args):
        ran.append(cell.key)
        return row(cell.task, cell.demos, 50)

    monkeypatch.setattr(bench, "run_cell", fake_run_cell)
    cells = [bench.Cell("pick-place-v3", d, "scripted", "stratified") for d in (10, 20)]
    args = types.SimpleNamespace(jobs=2, heartbeat=0)
    bench.run_grid(cells, args, results)
    assert ran == [("pick-place-v3", 20, "scripted", "stratified", 0)]
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert [(r["demos"], r["successes"]) for r in lines] == [(10, 97), (20, 50)]
    bench.run_grid(cells, args, results)  # everything done: nothing runs
    assert len(ran) == 1


def test_a_failing_cell_is_reported_and_not_written(tmp_path, monkeypatch, capsys):
    bench = load_module()

    def broken(cell, args):
        raise RuntimeError("act.train failed (exit 2)")

    monkeypatch.setattr(bench, "run_cell", broken)
    results = tmp_path / "success.jsonl"
    bench.run_grid([bench.Cell("push-v3", 10, "scripted", "stratified")], types.SimpleNamespace(jobs=1, heartbeat=0),
                   results)
    assert "FAILED push-v3 x10" in capsys.readouterr().out
    assert not results.exists() or results.read_text() == ""


def test_table_and_plot(tmp_path):
    bench = load_module()
    rows = [row("push-v3", 10, 80), row("pick-place-v3", 10, 97), row("pick-place-v3", 20, 100, steps=2100),
            row("pick-place-v3", 50, 3, spawn="fixed")]
    text = bench.table(rows)
    assert "### scripted demos, stratified spawns" in text and "### scripted demos, fixed spawns" in text
    lines = text.splitlines()
    pick = next(line for line in lines if line.startswith("| pick-place-v3 | 97%"))
    assert "97% (92%-99%) · 11.5 min" in pick and "100% (96%-100%) · 11.5 min, 2100 steps" in pick
    push = next(line for line in lines if line.startswith("| push-v3"))
    cells = [c.strip() for c in push.split("|")[2:-1]]
    assert cells[0].startswith("80% (") and cells[1:] == ["–"]  # no 20-demo push cell (50 is in the fixed table)
    # tasks keep the order (push before pick-place), not alphabetical
    assert lines.index(next(line for line in lines if line.startswith("| push-v3"))) < lines.index(pick)
    png = tmp_path / "success.png"
    bench.plot(rows, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cells_of_an_older_recipe_are_marked(tmp_path):
    bench = load_module()
    # re-evaluated after the new row was trained: still an older recipe than today's defaults
    old = {**row("push-v3", 10, 91), "recipe": {"ema": 0.0}, "finished": "2026-11-26T10:00:00+0000"}
    legacy = row("push-v3", 50, 99)  # written before rows kept the weight average: no recipe["ema"]
    new = {**row("push-v3", 20, 99), "recipe": {"ema": 0.995}, "finished": "2026-11-26T08:00:00+0000"}
    lines = bench.table([old, legacy, new]).splitlines()
    assert "weights: moving average of the weights (--ema 0.995); * last step's weights (no --ema)" in lines
    cells = [c.strip() for c in next(line for line in lines if line.startswith("| push-v3")).split("|")[2:-1]]
    assert cells[0].endswith(" *") and not cells[1].endswith("*") and cells[2].endswith(" *")
    assert not any("*" in line for line in bench.table([new]).splitlines())


def test_the_scripted_expert_runs_on_the_evaluation_spawns_once_per_task(tmp_path):
    bench = load_module()
    path = tmp_path / "expert.jsonl"
    bench.run_experts(["reach-v3", "plate-slide-v3"], 3, path, jobs=1)
    rows = {r["task"]: r for r in bench.read_results(path)}
    assert set(rows) == {"reach-v3", "plate-slide-v3"}
    assert all(r["episodes"] == 3 and r["base_seed"] == 10**6 and 0 <= r["successes"] <= 3 for r in rows.values())
    assert rows["reach-v3"]["successes"] == 3  # MetaWorld's reach expert does not miss
    bench.run_experts(["reach-v3"], 3, path, jobs=1)  # done already: nothing appended
    assert len(bench.read_results(path)) == 2


def test_the_table_puts_the_expert_beside_act_and_the_suite_plot(tmp_path):
    bench = load_module()
    tasks = [f"task{i}-v3" for i in range(9)]
    rows = [row(t, 20, 90 + i, minutes=2.5) for i, t in enumerate(tasks)]
    experts = {t: {"task": t, "success_rate": 1.0 if i else 0.8} for i, t in enumerate(tasks)}
    lines = bench.table(rows, experts).splitlines()
    assert "| task | expert | 20 demos |" in lines
    assert next(line for line in lines if line.startswith("| task0-v3")).startswith("| task0-v3 | 80% | 90% (")
    summary = next(line for line in lines if line.startswith("20 demos, 9 tasks"))
    # mean ACT 94%, mean expert 97.8%; 8 tasks the expert masters, 8 of them (91-98%) reach 90%
    assert "ACT 94.0% on average against the expert's 97.8%" in summary and "(96.1% of it)" in summary
    assert "of the 8 tasks the expert succeeds on >= 95% of spawns, 8 reach >= 90%" in summary
    png = tmp_path / "suite.png"
    bench.plot_suite(rows, experts, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_noisy_or_cut_demos_are_recorded_with_their_flags_and_cached_apart(tmp_path, monkeypatch):
    bench = load_module()
    commands = []

    def fake_run(command, log):
        commands.append(command)
        Path(command[command.index("--out") + 1]).mkdir(parents=True)
        return 0.1

    monkeypatch.setattr(bench, "_run", fake_run)
    cell = bench.Cell("reach-v3", 20, "scripted", "stratified")
    plain, _ = bench.record_demos(cell, tmp_path, tmp_path / "log.txt")
    bench.EXPERT_NOISE[0] = 0.15  # a fresh module per test: nothing to undo
    noisy, _ = bench.record_demos(cell, tmp_path, tmp_path / "log.txt")
    # 40 steps held after the first success (teleop record's default); the suite's demos before held 20
    assert plain.name == "reach-v3_scripted_stratified_20_hold40" and noisy.name == plain.name.replace(
        "_hold40", "_noise0.15_hold40")
    assert "--expert-noise" not in commands[0]
    assert commands[1][commands[1].index("--expert-noise") + 1] == "0.15"
    assert bench.record_demos(cell, tmp_path, tmp_path / "log.txt") == (noisy, 0.0)  # cached: not recorded again
    assert len(commands) == 2
    assert commands[0][commands[0].index("--hold-steps") + 1] == "40"
    bench.EXPERT_NOISE[0], bench.HOLD_STEPS[0] = 0.0, 20  # the earlier tables' demos keep their cache names
    legacy, _ = bench.record_demos(cell, tmp_path, tmp_path / "log.txt")
    assert legacy.name == "reach-v3_scripted_stratified_20" and commands[2][commands[2].index("--hold-steps") + 1] == "20"


def test_training_seeds_share_their_demos_and_the_table_shows_each(tmp_path, monkeypatch):
    import threading
    import time

    bench = load_module()
    recorded = []

    def slow_record(command, log):  # two seeds of one cell asking at once must not both record
        recorded.append(command)
        time.sleep(0.2)
        Path(command[command.index("--out") + 1]).mkdir(parents=True)
        return 0.1

    monkeypatch.setattr(bench, "_run", slow_record)
    cells = [bench.Cell("reach-v3", 20, "scripted", "stratified", seed) for seed in (0, 1)]
    found = []
    threads = [threading.Thread(target=lambda c=c: found.append(bench.record_demos(c, tmp_path, tmp_path / "l")))
               for c in cells]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(recorded) == 1
    assert {path for path, _ in found} == {tmp_path / "demos" / "reach-v3_scripted_stratified_20_hold40"}
    assert str(cells[1]) == "reach-v3 x20 scripted/stratified seed 1" and cells[0].key != cells[1].key

    # A rerun skips the seeds already in the results; the table shows the mean and each seed.
    results = tmp_path / "success.jsonl"
    results.write_text(json.dumps(row("reach-v3", 20, 85)) + "\n")  # a row written before rows had a seed
    monkeypatch.setattr(bench, "run_cell", lambda cell, args: {**row(cell.task, cell.demos, 71 if cell.seed == 1
                                                                     else 48), "seed": cell.seed})
    seeds = [bench.Cell("reach-v3", 20, "scripted", "stratified", seed) for seed in (0, 1, 2)]
    bench.run_grid(seeds, types.SimpleNamespace(jobs=2, heartbeat=0), results)
    rows = bench.read_results(results)
    assert sorted(r.get("seed", 0) for r in rows) == [0, 1, 2]
    merged = bench.merge_seeds(rows)
    assert len(merged) == 1 and merged[0]["seed_rates"] == [0.85, 0.71, 0.48]
    assert merged[0]["success_ci95"] == [0.48, 0.85]
    line = next(x for x in bench.table(merged).splitlines() if x.startswith("| reach-v3"))
    assert "68% (seeds 85/71/48) · 11.5 min" in line
    assert bench.merge_seeds([row("push-v3", 10, 80)]) == [row("push-v3", 10, 80)]  # one seed: the row itself
    png = tmp_path / "success.png"
    bench.plot(merged, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_more_spawns_pools_a_second_draw_of_the_runs_that_scored_under_the_bar(tmp_path, monkeypatch):
    bench = load_module()
    inference = {"temporal_ensemble": None, "query_every": 5}
    source, rows = tmp_path / "old.jsonl", []
    for task, successes in (("push-back-v3", 78), ("reach-v3", 100)):
        run = tmp_path / "runs" / task
        (run / "run").mkdir(parents=True)
        split = {"episodes": 50, "successes": successes // 2, "success_rate": None, "success_ci95": None}
        rows.append({**row(task, 20, successes), "run": str(run), "inference": inference, "eval_minutes": 0.5,
                     "coverage": {"train_spawns": 18, "inside": split, "outside": split}})
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    asked = []

    def fake_evaluate(work, args, log, seed=None, episodes=None):
        asked.append((Path(work).name, seed, episodes))
        return {"episodes": episodes, "successes": 344, "inference": inference, "eval_minutes": 1.0,
                "finished": "now", "coverage": {"inside": {"episodes": 100, "successes": 90},
                                                "outside": {"episodes": 300, "successes": 254}}}

    monkeypatch.setattr(bench, "evaluate_run", fake_evaluate)
    monkeypatch.setattr(bench, "report", lambda *a: None)
    results = tmp_path / "new.jsonl"
    assert bench.main(["--tasks", "push-back-v3", "reach-v3", "--demos", "20", "--reevaluate", str(source),
                       "--more-spawns", "400", "--below", "1", "--results", str(results), "--heartbeat", "0"]) == 0
    assert asked == [("push-back-v3", 1_000_100, 400)]  # the seeds after the row's 100; reach's 100% is left
    (pooled,) = bench.read_results(results)
    assert (pooled["successes"], pooled["episodes"], pooled["success_rate"]) == (422, 500, 0.844)
    assert [(d["seed"], d["episodes"], d["successes"]) for d in pooled["draws"]] == [(1_000_000, 100, 78),
                                                                                     (1_000_100, 400, 344)]
    assert pooled["coverage"]["inside"]["episodes"] == 150 and pooled["coverage"]["outside"]["successes"] == 293
    assert pooled["success_ci95"][0] < 0.844 < pooled["success_ci95"][1]
    text = bench.table([pooled])
    assert "success on 500 unseen random spawns" in text and "| push-back-v3 | 84.4% (81%-87%)" in text

    # A second pass continues after both draws; a run whose inference changed is not pooled with its row.
    again = tmp_path / "again.jsonl"
    bench.main(["--tasks", "push-back-v3", "--demos", "20", "--reevaluate", str(results), "--more-spawns", "100",
                "--results", str(again), "--heartbeat", "0"])
    assert asked[-1] == ("push-back-v3", 1_000_500, 100)
    inference = {"temporal_ensemble": -0.1, "query_every": None}
    other = tmp_path / "other.jsonl"
    bench.main(["--tasks", "push-back-v3", "--demos", "20", "--reevaluate", str(source), "--more-spawns", "400",
                "--results", str(other), "--heartbeat", "0"])
    assert bench.read_results(other) == []


def test_more_spawns_needs_reevaluate(capsys):
    import pytest

    bench = load_module()
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--tasks", "push-v3", "--more-spawns", "400"])
    assert exit_info.value.code == 2
    assert "--more-spawns and --below apply to --reevaluate" in capsys.readouterr().err

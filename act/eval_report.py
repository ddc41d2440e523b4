"""What act-eval reports: success with its intervals, where the evaluation spawns lie against the
training spawns, the coverage and contact-sheet PNGs, results.json / results.md; and merging shards.

The episodes come from :func:`act.evaluate.evaluate` (or several ``--shard`` runs); a report is a
plain dict, so :func:`merge` rebuilds the same tables from the shards' results.json files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from teleop.atomic import write_text
from teleop.errors import ToolkitError


def analyse(report: dict) -> dict:
    """Summary metrics plus where the evaluation spawns lie against the training spawns."""
    from act.coverage import relate
    from act.metrics import summarize, wilson_interval

    episodes = report["episodes"]
    summary = summarize(episodes)
    relation = relate(report["train_spawns"], [e["spawn"] for e in episodes], report["spawn_low"],
                      report["spawn_high"], task=report["task"])
    for e, distance, inside in zip(episodes, relation.nearest_train_distance, relation.inside_hull):
        e["nearest_train_distance"] = float(distance)
        e["inside_train_hull"] = bool(inside)
    split = {}
    for name, mask in (("inside", relation.inside_hull), ("outside", ~relation.inside_hull)):
        n = int(mask.sum())
        k = int(sum(e["success"] for e, m in zip(episodes, mask) if m))
        split[name] = {"episodes": n, "successes": k, "success_rate": k / n if n else None,
                       "success_ci95": list(wilson_interval(k, n)) if n else None}
    coverage = {"train_spawns": len(report["train_spawns"]), **split, "compared": list(relation.names),
                "compared_axes": relation.axes.tolist(),
                "median_nearest_train_distance": float(np.median(relation.nearest_train_distance))}
    return {"summary": summary, "coverage": coverage}


def write_report(report: dict, out: Path, *, sheet_frames=()) -> None:
    from act.coverage import plot_coverage

    report.update(analyse(report))
    s, c = report["summary"], report["coverage"]
    png = out / "spawn_coverage.png"
    plot_coverage(png, report["train_spawns"], [e["spawn"] for e in report["episodes"]],
                  [e["success"] for e in report["episodes"]], report["spawn_low"], report["spawn_high"],
                  task=report["task"],
                  title=f"{report['task']}: {s['successes']}/{s['episodes']} successes; "
                        f"{c['inside']['episodes']} eval spawns inside the training hull")
    report["coverage_png"] = str(png)
    if sheet_frames:
        from act.videos import contact_sheet

        sheet = out / "final_frames.png"
        contact_sheet([f for _, f, _ in sheet_frames],
                      [f"#{i} {'success' if ok else 'fail'}" for i, _, ok in sheet_frames], sheet)
        report["contact_sheet"] = str(sheet)
    write_text(out / "results.json", json.dumps(report, indent=1))
    write_text(out / "results.md", format_markdown(report))
    print(format_table(report))


def _rate(block: dict | None) -> str:
    if not block or not block["episodes"]:
        return "-"
    low, high = block["success_ci95"]
    return f"{block['successes']}/{block['episodes']} = {block['success_rate']:.0%} (95% CI {low:.0%}-{high:.0%})"


def _horizon(report: dict) -> str:
    horizon = report.get("horizon")
    if not horizon:  # results.json written before act-eval recorded it ran at MetaWorld's 500
        return "500 steps (MetaWorld's)"
    return f"{horizon['steps']} steps ({horizon['why']})"


def format_table(report: dict) -> str:
    s, c = report["summary"], report["coverage"]
    inference = report["inference"]
    mode = (f"temporal ensemble k={inference['temporal_ensemble']}" if inference["temporal_ensemble"] is not None
            else f"chunks, query every {inference['query_every']}")
    lines = [
        f"checkpoint        {report['checkpoint']} (step {report['checkpoint_step']})",
        f"task              {report['task']}" + ("" if report["task"] == report["trained_task"]
                                                else f" (trained on {report['trained_task']})"),
        f"inference         {mode}" + (f" ({report['inference_why']})" if report.get("inference_why") else ""),
        f"horizon           {_horizon(report)}",
        f"success           {_rate(s)}",
        f"mean length       {s['mean_length']:.1f} steps",
        f"steps to success  {s['mean_steps_to_success']:.1f}" if s["mean_steps_to_success"] is not None
        else "steps to success  -",
        f"final obj-goal    {s['mean_final_obj_to_target']:.3f} m (mean)",
        f"total reward      {s['mean_total_reward']:.1f} (mean)",
        f"training spawns   {c['train_spawns']}, compared on {', '.join(c.get('compared', [])) or '-'}",
        f"inside hull       {_rate(c['inside'])}",
        f"outside hull      {_rate(c['outside'])}",
    ]
    if c["inside"]["episodes"] == 0:
        lines.append("WARNING: every evaluation spawn lies outside the training spawns' hull: the policy "
                     "was never trained where it is evaluated (single-spawn or narrow data?)")
    if report.get("elapsed_s"):
        lines.append(f"throughput        {report['env_steps'] / report['elapsed_s']:.0f} env steps/s "
                     f"({report['elapsed_s']:.1f} s)")
    return "\n".join(lines)


def format_markdown(report: dict) -> str:
    lines = ["# Evaluation", "", "```", format_table(report), "```", "",
             f"![spawn coverage]({Path(report['coverage_png']).name})", ""]
    if report.get("contact_sheet"):
        lines += [f"![final frames]({Path(report['contact_sheet']).name})", ""]
    axes = report["coverage"].get("compared_axes", [0, 1])
    names = report["coverage"].get("compared", ["object x", "object y"])
    lines += [f"| # | seed | spawn ({', '.join(names)}) | success | length | final obj-goal (m) | reward | "
              "nearest train spawn (m) | inside hull | video |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for e in report["episodes"]:
        video = f"[mp4](videos/{Path(e['video']).name})" if e.get("video") else ""
        spawn = ", ".join(f"{e['spawn'][i]:+.3f}" for i in axes)
        lines.append(f"| {e['index']} | {e['seed']} | {spawn} | "
                     f"{'yes' if e['success'] else 'no'} | {e['length']} | {e['final_obj_to_target']:.3f} | "
                     f"{e['total_reward']:.0f} | {e['nearest_train_distance']:.3f} | "
                     f"{'yes' if e['inside_train_hull'] else 'no'} | {video} |")
    return "\n".join(lines) + "\n"


def merge(folders: list[str], out: str) -> dict:
    """Combine shard results into one report (refuses shards of different checkpoints or settings)."""
    reports = []
    for folder in folders:
        path = Path(folder) / "results.json"
        try:
            reports.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as error:
            raise ToolkitError(f"{path}: not an act-eval result ({error}); pass folders written by act-eval") from None
    keys = ("checkpoint", "task", "inference", "seed", "horizon")
    for r in reports[1:]:
        for key in keys:
            if r.get(key) != reports[0].get(key):
                raise ToolkitError(f"cannot merge: {key} differs ({reports[0].get(key)!r} vs {r.get(key)!r})")
    episodes = [e for r in reports for e in r["episodes"]]
    indices = [e["index"] for e in episodes]
    if len(set(indices)) != len(indices):
        raise ToolkitError("cannot merge: the shards share episodes (run disjoint --shard i/n slices)")
    merged = {k: v for k, v in reports[0].items() if k not in ("episodes", "summary", "coverage")}
    merged.update(shard=None, elapsed_s=max(r["elapsed_s"] for r in reports),
                  env_steps=sum(r["env_steps"] for r in reports),
                  episodes=sorted(episodes, key=lambda e: e["index"]))
    out_path = Path(out)
    out_path.mkdir(parents=True, exist_ok=True)
    write_report(merged, out_path)
    return merged

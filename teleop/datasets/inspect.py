"""``teleop inspect``: what a folder of episodes holds, and how varied its spawns are."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from teleop.episode import read_intervention, scan_folder, takeovers
from teleop.errors import ToolkitError
from teleop.hull import SHARE_MAX_POINTS
from teleop.spawn import SpawnDiversity, spawn_diversity
from teleop.spawn_dims import used_entries


@dataclass
class DatasetSummary:
    folders: list[Path]
    episodes: list[dict]  # attrs of each readable episode (with "path")
    problems: list[str]  # one line per unreadable file
    tasks: Counter = field(default_factory=Counter)
    diversity: dict = field(default_factory=dict)  # task -> SpawnDiversity
    spawn_entries: dict = field(default_factory=dict)  # task -> [(index in rand_vec, name)] the task randomizes


def summarize(folders) -> DatasetSummary:
    folders = [Path(f) for f in ([folders] if isinstance(folders, (str, Path)) else folders)]
    episodes, problems = scan_folder(folders)
    summary = DatasetSummary(folders, episodes, problems, Counter(e["task"] for e in episodes))
    for task in summary.tasks:
        eps = [e for e in episodes if e["task"] == task]
        low, high = spawn_box_of(eps)
        summary.diversity[task] = spawn_diversity([e["rand_vec"] for e in eps], low, high, task=task)
        summary.spawn_entries[task] = used_entries(task, low, high)
    return summary


def spawn_box_of(episodes: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    first = episodes[0]
    if "spawn_low" in first and "spawn_high" in first:
        return np.asarray(first["spawn_low"]), np.asarray(first["spawn_high"])
    from teleop.env import spawn_box

    return spawn_box(first["task"])


def format_report(summary: DatasetSummary, *, max_rows: int = 200) -> str:
    lines = []
    if summary.episodes:
        entries = summary.spawn_entries
        named = (", ".join(name for _, name in next(iter(entries.values()))) if len(entries) == 1
                 else "each task's randomized entries, named below")
        lines.append(f"{'episode':<22} {'task':<24} {'seed':>8} {'ok':>3} {'steps':>5}  "
                     f"{'operator':<10} spawn ({named})")
        for e in summary.episodes[:max_rows]:
            vector = np.asarray(e["rand_vec"], dtype=float).ravel()
            values = ", ".join(f"{vector[i]:+.4f}" for i, _ in entries.get(e["task"], ()))
            lines.append(f"{Path(e['path']).name:<22} {e['task']:<24} {int(e['seed']):>8} "
                         f"{'yes' if e['success'] else 'no':>3} {int(e['num_steps']):>5}  "
                         f"{str(e.get('operator') or '-'):<10} ({values})")
        if len(summary.episodes) > max_rows:
            lines.append(f"... {len(summary.episodes) - max_rows} more")
    lines.append("")
    for task, diversity in summary.diversity.items():
        eps = [e for e in summary.episodes if e["task"] == task]
        successes = sum(bool(e["success"]) for e in eps)
        steps = np.array([int(e["num_steps"]) for e in eps])
        lines.append(f"{task}: {len(eps)} episodes, {successes} successful, "
                     f"{int(steps.sum())} steps (median {int(np.median(steps))} per episode)")
        operators = Counter(str(e.get("operator") or "-") for e in eps)
        if len(operators) > 1 or "-" not in operators:
            for operator, count in sorted(operators.items()):
                mine = [e for e in eps if str(e.get("operator") or "-") == operator]
                ok = sum(bool(e["success"]) for e in mine)
                sessions = {str(e.get("session") or "") for e in mine} - {""}
                machines = {str(e.get("hostname") or "") for e in mine} - {""}
                lines.append(f"  operator {operator}: {count} episodes, {ok} successful, median "
                             f"{int(np.median([int(e['num_steps']) for e in mine]))} steps, "
                             f"{len(sessions)} session(s) on {', '.join(sorted(machines)) or 'unknown machines'}")
        lines.extend("  " + line for line in format_corrections(eps))
        lines.extend("  " + line for line in format_diversity(diversity))
    if summary.problems:
        lines.append("")
        lines.append(f"{len(summary.problems)} unreadable file(s), skipped:")
        lines.extend("  " + p for p in summary.problems)
    return "\n".join(lines)


def format_corrections(episodes: list[dict]) -> list[str]:
    """Who drove the correction episodes (``teleop correct``): steps by the person and by the policy, and
    takeovers per episode. Nothing for a folder of plain demos."""
    counts = []
    for e in episodes:
        mine = read_intervention(e["path"])
        if mine is not None:
            counts.append((int(mine.sum()), int((~mine).sum()), takeovers(mine)))
    if not counts:
        return []
    person, policy, taken = (np.array(c) for c in zip(*counts))
    total = person.sum() + policy.sum()
    return [f"corrections: {len(counts)} of {len(episodes)} episodes; {int(person.sum())} steps driven by a person "
            f"({person.sum() / max(total, 1):.0%}), {int(policy.sum())} by the policy; takeovers per episode: "
            f"mean {taken.mean():.1f}, max {int(taken.max())}, none in {int((taken == 0).sum())}"]


def format_diversity(d: SpawnDiversity) -> list[str]:
    lines = ["spawn diversity (what the task randomizes, metres):"]
    width = max((len(name) for name in d.names), default=0)
    for name, lo, hi, sd in zip(d.names, d.minimum, d.maximum, d.std):
        lines.append(f"  {name:<{width}}  min {lo:+.4f}  max {hi:+.4f}  std {sd:.2e}")
    if not d.names:
        lines.append("  (the task randomizes nothing)")
    lines.append(f"  distinct spawns: {d.distinct} of {d.episodes}")
    lines.append(f"  spawn box covered: {d.coverage:.0%} of a {d.grid}-per-entry grid over {len(d.names)} entries, "
                 f"bounding box spans {d.extent:.0%} of the box")
    if d.names:
        bound = "at least " if d.episodes > SHARE_MAX_POINTS else ""
        lines.append(f"  convex hull of the spawns: {bound}{d.hull:.0%} of the box (about the share of act-eval's "
                     f"random spawns that lie inside it)")
    warning = d.warning()
    if warning:
        bar = "!" * 78
        lines += [bar, "WARNING: " + warning, bar]
    return lines


def plot_spawns(summary: DatasetSummary, out: str | Path) -> Path:
    """PNG scatter of each task's spawns over its spawn box, on the two entries it randomizes that
    matter most (object x/y for most tasks; teleop.spawn_dims.plane)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from teleop.spawn_dims import spawn_axes

    tasks = list(summary.diversity)
    if not tasks:
        raise ToolkitError("no readable episodes to plot")
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        eps = [e for e in summary.episodes if e["task"] == task]
        low, high = spawn_box_of(eps)
        vec = np.array([np.asarray(e["rand_vec"], dtype=float) for e in eps])
        ok = np.array([bool(e["success"]) for e in eps])
        i, j = spawn_axes(ax, task, low, high)
        ax.scatter(vec[ok, i], vec[ok, j], s=18, c="tab:blue", label="successful")
        if (~ok).any():
            ax.scatter(vec[~ok, i], vec[~ok, j], s=18, c="tab:red", marker="x", label="failed")
        d = summary.diversity[task]
        ax.set_title(f"{task}: {d.distinct} distinct of {d.episodes}, coverage {d.coverage:.0%}, "
                     f"hull {d.hull:.0%}", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
        if d.degenerate:
            ax.text(0.5, 0.5, "ALL EPISODES FROM ONE SPAWN", transform=ax.transAxes, ha="center",
                    color="red", fontsize=10, weight="bold")
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out

"""``teleop session status`` and ``teleop session report``: progress, pace and spawn coverage of a session.

Kept episodes are counted from the files on disk (the truth, even while the
session runs or after a crash); discards, failures and attempt times come
from the session's attempt log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from teleop.atomic import write_text
from teleop.episode import EpisodeError, episode_files, read_attrs
from teleop.sessions.session import duration_of, read_state
from teleop.spawn import SpawnDiversity, SpawnStream, spawn_diversity

REPORT_DIR = "report"


@dataclass
class Row:
    """Counts for one task, or one operator on one task."""

    task: str
    operator: str  # "" for the whole task
    wanted: int
    kept: int
    discarded: int  # thrown away by the operator
    failed: int  # ended without success
    attempt_s: float  # time spent on every attempt, kept or not
    kept_durations: list = field(default_factory=list)

    @property
    def attempts(self) -> int:
        return self.kept + self.discarded + self.failed

    @property
    def success_rate(self) -> float | None:
        return self.kept / self.attempts if self.attempts else None

    @property
    def median_s(self) -> float | None:
        return float(np.median(self.kept_durations)) if self.kept_durations else None

    def time_left_s(self, remaining: int) -> float | None:
        """Seconds for ``remaining`` more kept episodes at this row's pace (attempt time per kept episode)."""
        if remaining <= 0:
            return 0.0
        return remaining * self.attempt_s / self.kept if self.kept else None


@dataclass
class TaskStatus:
    total: Row
    operators: list[Row]
    diversity: SpawnDiversity
    kept_spawns: np.ndarray  # (K, D) rand_vec of kept episodes
    pending_spawns: np.ndarray  # (P, D) candidates still to record
    failed_spawns: np.ndarray  # (F, D) candidates of attempts not kept
    low: np.ndarray
    high: np.ndarray


@dataclass
class SessionStatus:
    folder: Path
    state: dict
    tasks: dict  # task -> TaskStatus

    @property
    def complete(self) -> bool:
        return all(t.total.kept >= t.total.wanted for t in self.tasks.values())


def session_status(folder: str | Path) -> SessionStatus:
    folder = Path(folder)
    state = read_state(folder)
    tasks = {}
    for block in state["plan"]["tasks"]:
        task, wanted = block["task"], int(block["episodes"])
        info = state["tasks"][task]
        files = []
        for path in episode_files(folder / task) if (folder / task).is_dir() else []:
            try:
                attrs = read_attrs(path)
            except EpisodeError:
                continue
            if attrs.get("session") == state["session_id"]:
                attrs["path"] = path
                files.append(attrs)
        log = [e for e in state["log"] if e["task"] == task]
        logged_kept = {e.get("file") for e in log if e["outcome"] == "kept"}
        operators = sorted({str(a.get("operator", "")) for a in files} | {e["operator"] for e in log})

        def row(operator: str) -> Row:
            mine = [a for a in files if not operator or str(a.get("operator", "")) == operator]
            entries = [e for e in log if not operator or e["operator"] == operator]
            # Time of kept files the log has not seen yet (session still running or killed) comes from the file.
            unlogged = [a for a in mine if a["path"].name not in logged_kept]
            return Row(task, operator, wanted, len(mine),
                       sum(e["outcome"] == "discarded" for e in entries),
                       sum(e["outcome"] == "failed" for e in entries),
                       sum(e["duration_s"] for e in entries) + sum(duration_of(a) for a in unlogged),
                       [duration_of(a) for a in mine])

        low, high = np.asarray(info["spawn_low"]), np.asarray(info["spawn_high"])
        kept = np.array([np.asarray(a["rand_vec"], float) for a in files]).reshape(len(files), low.size)
        stream = SpawnStream(low, high, strategy=state["spawn"], base_seed=info["base_seed"])
        kept_index = {int(a["spawn_index"]) for a in files}
        pending = [i for i in info["planned"] if i not in kept_index and i not in info["retired"]]
        failed = sorted({e["spawn_index"] for e in log if e["outcome"] != "kept"} - kept_index)
        candidates = lambda ids: np.array([stream[i].candidate for i in ids]).reshape(len(ids), low.size)  # noqa: E731
        diversity = spawn_diversity(kept, low, high, task=task)
        tasks[task] = TaskStatus(row(""), [row(op) for op in operators if op], diversity, kept,
                                 candidates(pending), candidates(failed), low, high)
    return SessionStatus(folder, state, tasks)


def _fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def _fmt_rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def status_rows(status: SessionStatus) -> list[list[str]]:
    """Header + one row per task and per operator on each task."""
    rows = [["task", "operator", "kept", "discarded", "failed", "success", "median ep", "time left"]]
    for task, ts in status.tasks.items():
        remaining = ts.total.wanted - ts.total.kept
        for r in [ts.total, *ts.operators]:
            rows.append([task if not r.operator else "", r.operator or "(all)",
                         f"{r.kept}/{r.wanted}" if not r.operator else str(r.kept), str(r.discarded), str(r.failed),
                         _fmt_rate(r.success_rate), _fmt_s(r.median_s), _fmt_s(r.time_left_s(remaining))])
    return rows


def format_status(status: SessionStatus) -> str:
    state = status.state
    lines = [f"session {state['session_id']} ({state['hostname']}, seeds {state['seed_range'][0]}.."
             f"{state['seed_range'][1]}): {'complete' if status.complete else 'in progress'}", ""]
    rows = status_rows(status)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        lines.append("  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths))))
    lines.append("")
    for task, ts in status.tasks.items():
        d = ts.diversity
        lines.append(f"{task} spawn coverage: {d.coverage:.0%} of a {d.grid}-per-axis grid over the spawn box, "
                     f"hull {d.hull:.0%} of it, {d.distinct} distinct spawns in {d.episodes} kept, "
                     f"{len(ts.pending_spawns)} planned spawns pending")
    return "\n".join(lines)


def format_markdown(status: SessionStatus, images: list[str]) -> str:
    state = status.state
    plan = state["plan"]
    rows = status_rows(status)
    lines = [f"# Session report: {plan['name']}", "",
             f"- session: `{state['session_id']}`", f"- machine: {state['hostname']}",
             f"- started: {state['created_at']}, last update: {state.get('updated_at', '-')}",
             f"- device: {plan['device']}, spawns: {state['spawn']}, step limit: {plan['max_steps']}",
             f"- seed range: {state['seed_range'][0]}..{state['seed_range'][1]}",
             f"- status: {'complete' if status.complete else 'in progress'}", "",
             "## Progress", "", "| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    lines += ["", "## Spawn coverage", ""]
    for task, ts in status.tasks.items():
        d = ts.diversity
        lines.append(f"- {task}: {d.coverage:.0%} of a {d.grid}-per-axis grid, {d.distinct} distinct of "
                     f"{d.episodes} kept, bounding box spans {d.extent:.0%} of the spawn box, their convex hull "
                     f"encloses {d.hull:.0%} of it")
        warning = d.warning()
        if warning:
            lines.append(f"  - **WARNING**: {warning}")
    lines += ["", "## Plots", ""] + [f"![{Path(i).stem}]({i})" for i in images]
    return "\n".join(lines) + "\n"


def write_report(folder: str | Path) -> Path:
    """Write ``FOLDER/report/session_report.md`` and its PNG plots; returns the markdown path."""
    status = session_status(folder)
    out = Path(folder) / REPORT_DIR
    out.mkdir(exist_ok=True)
    images = [p.name for p in _plot_all(status, out)]
    path = out / "session_report.md"
    write_text(path, format_markdown(status, images))
    return path


def _plot_all(status: SessionStatus, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from teleop.spawn_dims import spawn_axes

    written = []
    tasks = list(status.tasks.items())
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4.6), squeeze=False)
    for ax, (task, ts) in zip(axes[0], tasks):
        i, j = spawn_axes(ax, task, ts.low, ts.high)
        for points, style in ((ts.kept_spawns, dict(c="tab:blue", s=20, label="kept")),
                              (ts.pending_spawns, dict(facecolors="none", edgecolors="tab:gray", s=28, label="pending")),
                              (ts.failed_spawns, dict(c="tab:red", marker="x", s=22, label="not kept"))):
            if len(points):
                ax.scatter(points[:, i], points[:, j], **style)
        ax.set_title(f"{task}: {ts.total.kept}/{ts.total.wanted} kept, coverage {ts.diversity.coverage:.0%}", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    written.append(_save(fig, out / "spawn_coverage.png", plt))

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for task, ts in tasks:
        if ts.total.kept_durations:
            ax.plot(range(1, len(ts.total.kept_durations) + 1), ts.total.kept_durations, marker="o", ms=3, label=task)
    ax.set_xlabel("kept episode")
    ax.set_ylabel("duration (s)")
    ax.set_title("episode durations")
    if any(ts.total.kept_durations for _, ts in tasks):
        ax.legend(fontsize=7)
    written.append(_save(fig, out / "episode_durations.png", plt))

    operators = sorted({r.operator for _, ts in tasks for r in ts.operators})
    fig, ax = plt.subplots(figsize=(max(4, 1.6 * len(operators) + 2), 3.8))
    kept = [sum(r.kept for _, ts in tasks for r in ts.operators if r.operator == op) for op in operators]
    other = [sum(r.discarded + r.failed for _, ts in tasks for r in ts.operators if r.operator == op) for op in operators]
    ax.bar(operators, kept, color="tab:blue", label="kept")
    ax.bar(operators, other, bottom=kept, color="tab:red", label="discarded or failed")
    for i, (k, o) in enumerate(zip(kept, other)):
        ax.text(i, k + o, f"{k / (k + o):.0%}" if k + o else "-", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("attempts")
    ax.set_title("success per operator")
    ax.legend(fontsize=7)
    written.append(_save(fig, out / "operator_success.png", plt))
    return written


def _save(fig, path: Path, plt) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


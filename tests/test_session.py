"""`teleop session run | status | report`: resume after SIGKILL, the folder lock, reconciliation, plan errors."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_helpers import ROOT, run_cli
from teleop.episode import episode_files, read_attrs
from teleop.sessions.plan import PlanError, parse_plan

TWO_TASKS = """\
name = "two-tasks"
operator = "alice"
device = "scripted"
spawn = "stratified"

[[task]]
name = "reach-v3"
episodes = 5

[[task]]
name = "push-v3"
episodes = 5
"""


def _session_files(folder: Path) -> list[Path]:
    return [p for task in ("reach-v3", "push-v3") if (folder / task).is_dir() for p in episode_files(folder / task)]


def test_sigkill_halfway_then_resume_ends_with_exactly_the_planned_episodes(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text(TWO_TASKS)
    out = tmp_path / "session"
    cmd = [sys.executable, "-m", "teleop.cli", "session", "run", str(plan), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "reach-v3").is_dir() and len(episode_files(out / "reach-v3")) >= 3:
            break
        time.sleep(0.01)
    assert proc.poll() is None, f"session ended before it could be killed: {proc.stderr.read().decode()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _session_files(out)
    assert 3 <= len(before) < 10, f"killed at {len(before)} files: not halfway"
    state_before = json.loads((out / "session.json").read_text())

    res = run_cli("teleop.cli", "session", "run", str(plan), "--out", str(out), "--quiet")
    assert res.returncode == 0, res.stderr
    files = _session_files(out)
    assert len(files) == 10
    attrs = [read_attrs(p) for p in files]
    seeds = [int(a["seed"]) for a in attrs]
    assert len(set(seeds)) == 10
    assert all(a["success"] and a["session"] == state_before["session_id"] for a in attrs)
    lo, hi = state_before["seed_range"]
    assert all(lo <= s <= hi for s in seeds)
    assert sorted(p.name for p in before) == sorted(p.name for p in files if p in before)  # earlier files untouched
    assert not list(out.rglob("*.partial")) and not list(out.rglob(".*.tmp"))
    assert [len(episode_files(out / t)) for t in ("reach-v3", "push-v3")] == [5, 5]
    report = out / "report" / "session_report.md"
    assert report.is_file() and "| reach-v3 | (all) | 5/5 |" in report.read_text()
    for png in ("spawn_coverage.png", "episode_durations.png", "operator_success.png"):
        assert (out / "report" / png).stat().st_size > 5000

    status = run_cli("teleop.cli", "session", "status", str(out))
    assert status.returncode == 0, status.stderr
    assert "complete" in status.stdout and "alice" in status.stdout
    assert "reach-v3 spawn coverage:" in status.stdout

    again = run_cli("teleop.cli", "session", "run", str(plan), "--out", str(out), "--quiet")
    assert again.returncode == 0, again.stderr
    assert len(_session_files(out)) == 10  # a finished session records nothing more


def test_second_process_on_the_same_session_is_refused_and_nothing_changes(tmp_path):
    from teleop.sessions.session import Session

    plan = tmp_path / "plan.toml"
    plan.write_text(TWO_TASKS.replace("episodes = 5", "episodes = 1"))
    out = tmp_path / "session"
    with Session.open(plan, out) as session:
        state_bytes = (out / "session.json").read_bytes()
        res = run_cli("teleop.cli", "session", "run", str(plan), "--out", str(out), "--quiet")
        assert res.returncode == 2
        assert "in use by pid" in res.stderr and str(os.getpid()) in res.stderr
        assert "Traceback" not in res.stderr
        assert (out / "session.json").read_bytes() == state_bytes
        assert not _session_files(out)
        assert session.next_ticket() is not None  # the holder goes on working
    with Session.open(plan, out):  # released on close
        pass


def test_resume_adopts_a_file_the_state_missed_and_rerecords_a_lost_one(tmp_path):
    from teleop.sessions.session import Session
    from teleop.sessions.run import run_scripted

    plan = tmp_path / "plan.toml"
    plan.write_text(TWO_TASKS.replace('name = "push-v3"\nepisodes = 5', 'name = "push-v3"\nepisodes = 1')
                    .replace("episodes = 5", "episodes = 3"))
    out = tmp_path / "session"
    with Session.open(plan, out) as session:
        assert run_scripted(session, progress=False) == 4
        seeds = {int(read_attrs(p)["seed"]) for p in _session_files(out)}
    state = json.loads((out / "session.json").read_text())
    reach = state["tasks"]["reach-v3"]
    # Killed after the file landed but before the state was saved: the state does not know spawn 2.
    del reach["kept"]["2"]
    # And a file the state counts was lost (e.g. deleted): its spawn must be recorded again.
    lost = out / "push-v3" / "episode_000000.hdf5"
    lost_seed = int(read_attrs(lost)["seed"])
    lost.unlink()
    (out / "reach-v3" / ".episode_000003.hdf5.partial").write_bytes(b"half a file")
    (out / "session.json").write_text(json.dumps(state))

    with Session.open(plan, out) as session:
        assert session.state["tasks"]["reach-v3"]["kept"]["2"] == "episode_000002.hdf5"
        assert session.state["tasks"]["push-v3"]["kept"] == {}
        assert any(e.get("recovered") for e in session.state["log"])
        assert not (out / "reach-v3" / ".episode_000003.hdf5.partial").exists()
        ticket = session.next_ticket()
        assert (ticket.task, ticket.spawn.seed) == ("push-v3", lost_seed)  # only the lost one is pending
        session.discard(ticket)  # a discarded spawn goes back into the pool
        assert session.next_ticket().spawn.seed == lost_seed
    from teleop.sessions.report import format_status, session_status

    status = session_status(out)  # push-v3 has nothing kept yet: still reported
    push = status.tasks["push-v3"]
    assert (push.total.kept, push.total.discarded, len(push.pending_spawns)) == (0, 1, 1)
    assert push.total.time_left_s(1) is None
    assert re.search(r"push-v3\s+\(all\)\s+0/1\s+1\s+0\s+0%\s+-\s+-", format_status(status))
    with Session.open(plan, out) as session:
        assert run_scripted(session, progress=False) == 1
    files = _session_files(out)
    assert len(files) == 4 and {int(read_attrs(p)["seed"]) for p in files} == seeds


def test_sessions_draw_disjoint_seed_ranges_and_breaks_are_reminded(tmp_path):
    from teleop.sessions.session import SEEDS_PER_SESSION, Session, session_base_seed

    bases = {session_base_seed(f"plan-op{i}-host{i % 3}") for i in range(200)}
    assert len(bases) == 200 and all(b >= SEEDS_PER_SESSION and b % SEEDS_PER_SESSION == 0 for b in bases)
    plan = tmp_path / "plan.toml"
    plan.write_text(TWO_TASKS.replace("episodes = 5", "episodes = 2") + "")
    text = plan.read_text().replace('spawn = "stratified"', 'spawn = "stratified"\nbreak_every_minutes = 1')
    plan.write_text(text)
    with Session.open(plan, tmp_path / "a") as a, Session.open(plan, tmp_path / "b") as b:
        assert a.session_id != b.session_id and a.state["base_seed"] != b.state["base_seed"]
        assert not a.break_due()
        a.state["active_s"] = 61.0
        assert a.break_due()
        a.take_break()
        assert not a.break_due()


# --------------------------------------------------------------------- plan errors
@pytest.mark.parametrize("change, line, words", [
    (('name = "push-v3"', 'name = "psh-v3"'), 11, ["unknown task 'psh-v3'", "push-v3"]),
    (("episodes = 5\n\n", "episodes = -2\n\n"), 8, ["episodes must be at least 1", "-2"]),
    (('spawn = "stratified"', 'spwan = "stratified"'), 4, ["unknown key 'spwan'", "did you mean 'spawn'"]),
    (('name = "push-v3"\nepisodes', 'name = "push-v3"\nepisode'), 12, ["unknown key 'episode'", "episodes"]),
    (('spawn = "stratified"', 'spawn = "fixed"'), 4, ["spawn 'fixed'"]),
    (('operator = "alice"', 'operator = 3'), 2, ["operator must be a str"]),
])
def test_plan_errors_name_the_line_and_the_key(change, line, words):
    text = TWO_TASKS.replace(*change, 1)
    assert text != TWO_TASKS
    with pytest.raises(PlanError) as info:
        parse_plan(text, "plan.toml")
    message = str(info.value)
    assert message.startswith(f"plan.toml:{line}: "), message
    for word in words:
        assert word in message


def test_plan_error_from_the_command_line_is_one_line(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text(TWO_TASKS.replace("episodes = 5\n\n", "episodes = -1\n\n", 1))
    res = run_cli("teleop.cli", "session", "run", str(plan), "--out", str(tmp_path / "s"))
    assert res.returncode == 2
    assert res.stderr.strip() == f"error: {plan}:8: episodes must be at least 1, got -1"
    syntax = tmp_path / "broken.toml"
    syntax.write_text("name = \n")
    res = run_cli("teleop.cli", "session", "run", str(syntax), "--out", str(tmp_path / "s"))
    assert res.returncode == 2 and "line 1" in res.stderr and "not valid TOML" in res.stderr


def test_plan_with_several_operators_needs_one_named():
    plan = parse_plan(TWO_TASKS.replace('operator = "alice"', 'operators = ["alice", "bob"]'))
    assert plan.choose_operator("bob") == "bob"
    with pytest.raises(PlanError, match="--operator"):
        plan.choose_operator(None)
    with pytest.raises(PlanError, match="not in the plan"):
        plan.choose_operator("carol")
    assert plan.max_steps == 500
    limited = parse_plan(TWO_TASKS.replace('spawn = "stratified"', 'spawn = "stratified"\nepisode_time_limit_s = 2.0'))
    assert limited.max_steps == 160


def test_a_person_gets_a_human_clock_and_a_plan_can_set_the_speed():
    keyboard = parse_plan(TWO_TASKS.replace('device = "scripted"', 'device = "keyboard"'))
    assert keyboard.max_steps == 2000 and keyboard.speed is None  # 25 simulated s; the device's speed
    paced = parse_plan(TWO_TASKS.replace('device = "scripted"', 'device = "keyboard"\nspeed = 0.35\n'
                                                                 'episode_time_limit_s = 60'))
    assert paced.speed == 0.35 and paced.max_steps == 4800
    with pytest.raises(PlanError, match=r"speed must be in \[0.1, 1.0\]"):
        parse_plan(TWO_TASKS.replace('device = "scripted"', 'device = "keyboard"\nspeed = 3'))
    with pytest.raises(PlanError, match="episode_time_limit_s must be in"):
        parse_plan(TWO_TASKS.replace('spawn = "stratified"', 'spawn = "stratified"\nepisode_time_limit_s = 601'))

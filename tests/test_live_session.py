"""`teleop session run` with the keyboard: the live window driven by posted key events, quit and resume."""

import json
import threading
import time

import numpy as np
import pytest
import pygame

from cli_helpers import run_cli
from teleop.episode import episode_files, read_attrs

PLAN = """\
name = "kb-reach"
operator = "alice"
device = "keyboard"
spawn = "stratified"
break_every_minutes = 0.001   # due after the first attempt, so the reminder is exercised

[[task]]
name = "reach-v3"
episodes = 2
"""

# view-frame axis -> (key for +, key for -): right, away, up
AXIS_KEYS = ((pygame.K_d, pygame.K_a), (pygame.K_w, pygame.K_s), (pygame.K_r, pygame.K_f))


def key(kind, code):
    pygame.event.post(pygame.event.Event(kind, key=code, mod=0, unicode="", scancode=0))


def tap(code):
    """A press and release: the keyboard ignores a second KEYDOWN of a held key (auto-repeat)."""
    key(pygame.KEYDOWN, code)
    key(pygame.KEYUP, code)


def wait_for(condition, what, timeout=30.0):
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def drive_to_goal(control, timeout=30.0):
    """Hold and release the motion keys like an operator steering the hand onto the goal (bang-bang
    with a dead band, in the view's frame), until the episode ends after its success hold."""
    from teleop.mapping import view_basis

    basis = view_basis(control.env, "corner")
    held = set()
    end = time.monotonic() + timeout
    try:
        while control.flow.phase.value in ("idle", "recording"):
            assert time.monotonic() < end, f"no success in {timeout} s (steps {control.flow.steps})"
            along = np.linalg.solve(basis, control.env.goal_pos - control.env.hand_pos)
            want = {keys[0] if v > 0 else keys[1] for v, keys in zip(along, AXIS_KEYS) if abs(v) > 0.015}
            for code in held - want:
                key(pygame.KEYUP, code)
            for code in want - held:
                key(pygame.KEYDOWN, code)
            held = want
            time.sleep(0.01)
    finally:
        for code in held:
            key(pygame.KEYUP, code)


class Operator(threading.Thread):
    """Runs ``script(control)`` against the live loop; a failure quits the window and is re-raised."""

    def __init__(self, script):
        super().__init__(daemon=True)
        self.script, self.control, self.failure, self.log = script, None, None, {}

    def run(self):
        try:
            wait_for(lambda: self.control.hud is not None, "the first HUD")
            self.script(self.control, self.log)
        except BaseException as error:  # noqa: BLE001 - re-raised by the test
            self.failure = error
            pygame.event.post(pygame.event.Event(pygame.QUIT))


def run(plan, out, script):
    from teleop.sessions.run import run_session

    operator = Operator(script)

    def start(control):
        operator.control = control
        operator.start()

    session = run_session(plan, out, live_options={"on_start": start, "view_size": 96, "fps": 20})
    operator.join(5)
    if operator.failure:
        raise operator.failure
    return session, operator.log


def first_run(c, log):
    """Keep one success, acknowledge the break reminder, discard an attempt (same spawn again), quit."""
    session = c.source.session
    log["seed0"] = c.request.seed
    log["ready"] = (c.flow.steps, c.hud.to_goal, float(np.linalg.norm(c.env.hand_pos - c.env.goal_pos)))
    drive_to_goal(c)
    assert c.flow.phase.value == "review" and c.flow.ended.success
    tap(pygame.K_k)
    wait_for(lambda: session.kept_count("reach-v3") == 1 and c.hud.episode == 2, "the keep")
    wait_for(lambda: c.hud.reminder, "the break reminder")
    log["reminder_hud"] = c.hud
    tap(pygame.K_p)  # pausing acknowledges the reminder
    wait_for(lambda: c.flow.phase.value == "paused" and not c.hud.reminder, "the break")
    log["break"] = (session.state["active_s"], session.state["break_at_active_s"])
    tap(pygame.K_p)
    wait_for(lambda: c.flow.phase.value == "idle", "the resume")
    log["seed1"] = c.request.seed
    tap(pygame.K_RETURN)  # start recording without moving
    wait_for(lambda: c.flow.steps >= 10, "10 steps")
    tap(pygame.K_BACKSPACE)
    # The loop logs the discard, then asks for the next ticket: wait for both (the flow is idle before either).
    wait_for(lambda: session.state["log"][-1]["outcome"] == "discarded" and c.source.ticket is not None
             and c.request is c.source.ticket.spawn, "the discard and the next ticket")
    ticket = c.source.ticket
    log["after_discard"] = (ticket.spawn.seed, ticket.attempt, dict(session.state["log"][-1]))
    tap(pygame.K_ESCAPE)


def test_keyboard_session_keeps_discards_quits_and_resumes_to_the_planned_episodes(tmp_path):
    from teleop.live.hud import hud_lines, prompt

    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN)
    out = tmp_path / "session"
    session, log = run(plan, out, first_run)
    assert not session.done
    steps, shown, distance = log["ready"]  # before the first step the panel already says how far the goal is
    assert steps == 0 and shown == pytest.approx(distance, abs=1e-9) and shown > 0.05
    files = episode_files(out / "reach-v3")
    assert len(files) == 1 and int(read_attrs(files[0])["seed"]) == log["seed0"]
    assert log["seed1"] != log["seed0"]  # a keep moves on to another spawn
    seed, attempt, entry = log["after_discard"]
    assert seed == log["seed1"] and attempt == 2  # a discard re-records the same spawn, as a new attempt
    assert entry["steps"] >= 10 and entry["operator"] == "alice"
    hud = log["reminder_hud"]
    assert prompt(hud)[0] == hud.reminder and hud.reminder.startswith("Break time")
    texts = [text for text, _, _ in hud_lines(hud)]
    assert "session kb-reach: task 1 of 1" in texts and "operator alice" in texts
    assert "kept 1/2 here, 1/2 in all" in texts
    active, break_at = log["break"]
    assert active > 0 and break_at == active
    state = json.loads((out / "session.json").read_text())
    assert [e["outcome"] for e in state["log"]] == ["kept", "discarded"]  # the quit logged nothing

    def second_run(c, log):
        log["seed"] = c.request.seed
        drive_to_goal(c)
        tap(pygame.K_k)  # the last wanted episode: the window closes

    session, log2 = run(plan, out, second_run)
    assert session.done
    assert log2["seed"] == log["seed1"]  # resumed on the spawn left in the pool
    files = episode_files(out / "reach-v3")
    attrs = [read_attrs(p) for p in files]
    assert len(files) == 2 and all(a["success"] and a["device"] == "keyboard" for a in attrs)
    assert {int(a["seed"]) for a in attrs} == {log["seed0"], log["seed1"]}
    assert {a["session"] for a in attrs} == {session.session_id}

    replayed = run_cli("teleop.cli", "replay", "--verify", str(out / "reach-v3"))
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    status = run_cli("teleop.cli", "session", "status", str(out))
    assert status.returncode == 0, status.stderr
    assert "complete" in status.stdout and "alice" in status.stdout
    assert "2/2" in status.stdout

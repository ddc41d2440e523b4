"""Run the project's commands the way a user does: in a subprocess."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, cwd=None, timeout=300, env=None):
    """Run a console command of this project in a subprocess; returns CompletedProcess.

    env: variables to set on top of this process's; a value of None removes the variable.
    """
    import subprocess

    full_env = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            full_env.pop(name, None)
        else:
            full_env[name] = value
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd or ROOT, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def load_benchmark(name: str):
    """benchmarks/<name>.py imported as a module (the benchmarks are scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def run_operator_sessions(root, plan_text, operators=("alice", "bob")):
    """Run one plan as several operators' sessions (as if on several machines); returns their folders."""
    from teleop.sessions.run import run_session

    plan = Path(root) / "plan.toml"
    plan.write_text(plan_text)
    folders = []
    for operator in operators:
        run_session(plan, Path(root) / operator, operator=operator, progress=False)
        folders.append(Path(root) / operator)
    return folders

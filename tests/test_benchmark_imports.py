"""Every name a benchmark script imports from the project exists.

Benchmarks import inside functions (so `--help` stays fast), where nothing runs until the benchmark does:
benchmarks/evaluation.py imported `act.checkpoint.resolve_checkpoint` for weeks after it was renamed.
This reads each script's imports from its syntax tree and resolves them without running the script."""

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("act", "teleop", "devices")
SCRIPTS = sorted((ROOT / "benchmarks").glob("*.py"))


def project_imports(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, module, name) for each `from <project module> import name` and `import <project module>`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module.split(".")[0] in PROJECT:
            found += [(node.lineno, node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, None) for alias in node.names if alias.name.split(".")[0] in PROJECT]
    return found


def test_the_benchmarks_import_the_project():
    assert len(SCRIPTS) >= 10
    assert sum(bool(project_imports(path)) for path in SCRIPTS) >= 10


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_every_imported_name_exists(path):
    missing = []
    for line, module_name, name in project_imports(path):
        module = importlib.import_module(module_name)
        if name is not None and not hasattr(module, name):
            try:
                importlib.import_module(f"{module_name}.{name}")  # a submodule
            except ModuleNotFoundError:
                missing.append(f"{path.name}:{line}: {module_name}.{name}")
    assert not missing, "imports of names that do not exist: " + ", ".join(missing)

"""Imports follow the data flow: devices -> teleop -> act, and inside teleop the core <- live <- sessions.

Every import counts, also the ones inside functions (they still tie the modules together). The rules:

- ``devices/`` imports neither ``teleop`` nor ``act``: drivers do not know the simulator.
- ``teleop/`` never imports ``act``: recording does not load torch or the policy.
- ``act/`` imports no device and, from ``teleop``, only the recording core (environment, episode
  format, spawns, errors, atomic files, video): never the live window, sessions or dataset tools.
- The recording core (``teleop/*.py``) imports none of ``teleop.live``, ``teleop.sessions`` or
  ``teleop.datasets``; ``teleop/cli.py`` is the entry point that wires the parts together and is the
  one exception.
- ``teleop.live`` (the window) imports no session or dataset tool; ``teleop.datasets`` imports no
  window or session; ``teleop.sessions`` may use the core and the live window.
- ``teleop/datasets/metaworld_replay.py`` imports nothing of the project: it is the replay recipe a
  reader copies, with only h5py and MetaWorld.
- No two modules import each other, directly or through others.
"""

import ast
from pathlib import Path

import pytest

from cli_helpers import ROOT

PACKAGES = ("devices", "teleop", "act")
ENTRY_POINTS = {"teleop.cli"}
STANDALONE = {"teleop.datasets.metaworld_replay"}
TELEOP_PARTS = ("teleop.live", "teleop.sessions", "teleop.datasets")
FORBIDDEN = {
    # importer prefix: module prefixes it must not import
    "devices": ("teleop", "act"),
    "teleop": ("act",),
    "act": ("devices", *TELEOP_PARTS, "teleop.cli", "teleop.demo", "teleop.collect", "teleop.mapping"),
    "teleop.live": ("teleop.sessions", "teleop.datasets"),
    "teleop.datasets": ("teleop.live", "teleop.sessions"),
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str) -> set[str]:
    """The project modules ``source`` imports, anywhere in the file (relative imports resolved)."""
    found = set()
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def import_graph(root: Path) -> dict[str, set[str]]:
    files = [p for package in PACKAGES for p in sorted((root / package).rglob("*.py"))]
    modules = {module_name(p, root): p for p in files}
    graph = {}
    for name, path in modules.items():
        # "from teleop.live import window" names a module; "from teleop.env import TaskEnv" names the module teleop.env.
        graph[name] = {m for m in imports_of(path.read_text(), name) if m in modules and m != name}
    return graph


def violations(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for importer, imported in sorted(graph.items()):
        if importer in ENTRY_POINTS:
            continue
        rules = [bad for prefix, bad in FORBIDDEN.items() if _under(importer, prefix)]
        core = importer.startswith("teleop.") and not any(_under(importer, part) for part in TELEOP_PARTS)
        if core:
            rules.append(TELEOP_PARTS)
        if importer in STANDALONE:
            rules.append(PACKAGES)
        for target in sorted(imported):
            if any(_under(target, bad) for rule in rules for bad in rule):
                found.append(f"{importer} imports {target}")
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (each a set of modules importing each other)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_imports_follow_the_data_flow():
    bad = violations(import_graph(ROOT))
    assert not bad, "imports against the flow (see this file's docstring):\n" + "\n".join(bad)


def test_no_import_cycles():
    found = cycles(import_graph(ROOT))
    assert not found, "modules that import each other: " + "; ".join(" <-> ".join(g) for g in found)


def test_the_checks_catch_what_they_are_for(tmp_path):
    """A tree with one violation of each kind: every one is reported."""
    files = {
        "devices/__init__.py": "",
        "devices/pad.py": "def f():\n    from teleop.env import TaskEnv\n",
        "teleop/__init__.py": "",
        "teleop/env.py": "import act.model\n",
        "teleop/recorder.py": "from teleop.live import window\n",
        "teleop/live/__init__.py": "",
        "teleop/live/window.py": "from teleop.sessions.session import Session\n",
        "teleop/sessions/__init__.py": "",
        "teleop/sessions/session.py": "from . import plan\n",
        "teleop/sessions/plan.py": "from teleop.sessions import session\n",
        "teleop/datasets/__init__.py": "",
        "act/__init__.py": "",
        "act/model.py": "from devices.pad import f\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path)
    assert violations(graph) == [
        "act.model imports devices.pad",
        "devices.pad imports teleop.env",
        "teleop.env imports act.model",
        "teleop.live.window imports teleop.sessions.session",
        "teleop.recorder imports teleop.live",  # "from teleop.live import window" loads the package too
        "teleop.recorder imports teleop.live.window",
    ]
    assert ["teleop.sessions.plan", "teleop.sessions.session"] in cycles(graph)


@pytest.mark.parametrize("part", ["live", "sessions", "datasets"])
def test_each_part_of_teleop_says_what_it_holds(part):
    doc = ast.get_docstring(ast.parse((ROOT / "teleop" / part / "__init__.py").read_text()))
    assert doc and "import" in doc.lower(), f"teleop/{part}/__init__.py should say what lives there and what it may import"

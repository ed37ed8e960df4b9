"""The house rules of docs/architecture.md, read from the code itself.

* Rooms import one way: common (standard library only) at the bottom, then txfm, data, precompute,
  and evaluation and app on top; every import of one room by another follows ROOM_DEPENDS.
* No import cycle between any two modules (module-level and function-level imports alike).
* The app never imports torch, directly or through what it imports: checked on the import graph
  and by importing every app module in a fresh interpreter where ``import torch`` fails.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("common", "txfm", "data", "precompute", "evaluation", "app")
# which rooms each room may import (besides itself)
ROOM_DEPENDS = {
    "common": set(),
    "txfm": {"common"},
    "data": {"common", "txfm"},
    "precompute": {"common", "txfm", "data"},
    "evaluation": {"common", "txfm", "data", "precompute"},
    "app": {"common", "precompute"},
}


def _modules() -> dict[str, Path]:
    out = {}
    for room in ROOMS:
        for f in sorted((ROOT / room).rglob("*.py")):
            parts = f.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _imports(mod: str, path: Path) -> list[tuple[str, int]]:
    """(absolute module name, line) of every import statement in the file, relative ones resolved."""
    pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                head = pkg.split(".")[:len(pkg.split(".")) - (node.level - 1)]
                base = ".".join(head + ([node.module] if node.module else []))
            out.append((base, node.lineno))
            out += [(f"{base}.{a.name}", node.lineno) for a in node.names]
    return out


MODULES = _modules()


def _graph() -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(MODULES)
    for mod, path in MODULES.items():
        for name, _ in _imports(mod, path):
            if name in MODULES and name != mod:
                g.add_edge(mod, name)
    return g


def test_the_rule_covers_every_room_and_the_scan_finds_modules():
    assert set(ROOM_DEPENDS) == set(ROOMS)
    for room in ROOMS:
        assert any(m.split(".")[0] == room for m in MODULES), f"no modules found for room {room}"
    assert len(MODULES) > 80


def test_rooms_import_one_way():
    bad = []
    for mod, path in MODULES.items():
        room = mod.split(".")[0]
        for name, line in _imports(mod, path):
            other = name.split(".")[0]
            if other in ROOMS and other != room and other not in ROOM_DEPENDS[room]:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name} ({room} -> {other})")
    assert not bad, "imports against the room order (docs/architecture.md):\n" + "\n".join(bad)


# The bundle contract (precompute.bundle: layout, reader, validation, the one comparison, the
# enrichment statistics behind its tables, which the app reruns on a pasted gene list). Nothing else.
APP_MAY_IMPORT = {"precompute.bundle"}


def test_app_reads_bundles_through_the_contract_only():
    bad = []
    for mod, path in MODULES.items():
        if mod.split(".")[0] != "app":
            continue
        for name, line in _imports(mod, path):
            if name.split(".")[0] != "precompute" or name == "precompute":
                continue
            owner = next((m for m in APP_MAY_IMPORT if name == m or name.startswith(m + ".")), None)
            if owner is None:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not bad, "the app imports precompute beyond the bundle contract:\n" + "\n".join(bad)


def test_common_uses_the_standard_library_only():
    bad = [f"{p.relative_to(ROOT)}:{line} imports {name}" for m, p in MODULES.items() if m.startswith("common")
           for name, line in _imports(m, p)
           if name.split(".")[0] not in sys.stdlib_module_names and name.split(".")[0] not in ("common", "__future__")]
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    cycles = list(nx.simple_cycles(_graph()))
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c + c[:1]) for c in cycles)


def test_app_reaches_no_module_that_imports_torch():
    g = _graph()
    reached = set().union(*(nx.descendants(g, m) | {m} for m in MODULES if m.startswith("app")))
    bad = [f"{MODULES[m].relative_to(ROOT)}:{line} imports {name}" for m in sorted(reached)
           for name, line in _imports(m, MODULES[m]) if name.split(".")[0] == "torch"]
    assert not bad, "the app reaches torch through:\n" + "\n".join(bad)


def test_every_app_module_imports_with_torch_unimportable():
    # app.main and app.views.* are Streamlit page scripts (they draw on import, so they run under
    # AppTest in tests/app); their imports are covered by the graph check above
    names = [m for m in MODULES if m.startswith("app") and m != "app.main" and not m.startswith("app.views.")]
    assert len(names) >= 10
    code = ("import importlib, importlib.abc, sys\n"
            "class Block(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'torch' or name.startswith('torch.'):\n"
            "            raise ImportError('torch is blocked: the app must not import it')\n"
            "sys.meta_path.insert(0, Block())\n"
            f"for m in {names!r}:\n"
            "    importlib.import_module(m)\n"
            "assert 'torch' not in sys.modules\n"
            "print(len(sys.modules))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]

"""The library's shape: no import cycle among the omix modules, and no library module
imports the rule glue (``omix.steps``); rule scripts stay thin."""

from __future__ import annotations

import ast

from conftest import ROOT

PKG = ROOT / "workflow" / "scripts" / "omix"


def import_graph() -> dict[str, set[str]]:
    """Module -> the omix modules it imports (at module level or inside functions)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PKG.glob("*.py")):
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    deps.add(node.module.split(".")[0])
                else:
                    deps.update(a.name for a in node.names)
        graph[path.stem] = deps - {path.stem}
    return graph


def test_no_import_cycle_and_no_library_module_imports_the_rule_glue():
    graph = import_graph()
    assert {"pp", "mofa", "bundle", "score", "pages", "steps"} <= set(graph)
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            assert state.get(d) != 1, "import cycle: " + " -> ".join([*path, m, d])
            if d not in state:
                visit(d, [*path, m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    importers = sorted(m for m, deps in graph.items() if "steps" in deps)
    assert importers == [], importers


def test_rule_scripts_only_call_the_library():
    """Every run_*.py reads snakemake.* and calls omix.steps inside rule_boundary."""
    scripts = sorted((ROOT / "workflow" / "scripts").glob("run_*.py"))
    assert len(scripts) > 10
    for s in scripts:
        text = s.read_text()
        tree = ast.parse(text)
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
                 and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name)
                 and n.func.value.id == "steps"]
        assert len(calls) == 1, (s.name, len(calls))
        assert "rule_boundary(sm)" in text, s.name
        assert not [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef)]

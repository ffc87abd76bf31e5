"""The package mirrors the workflow: one subpackage per stage, imports that run one way, no
module past 400 lines, and an edge that loads no deep-learning or workflow framework."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PROJECT

PACKAGE = PROJECT / "skinkd"
# Earlier stages first; the top-level modules are the core every stage may use.
STAGES = ("core", "data", "nn", "teacher", "student", "evaluate", "edge", "runs")
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def stage_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in STAGES) else "core"


def imported_modules(path: Path) -> set[str]:
    """Every skinkd module ``path`` imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "skinkd":
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                is_module = (PROJECT / Path(*candidate.split("."))).with_suffix(".py").is_file()
                names.add(candidate if is_module else node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.split(".")[0] == "skinkd")
    return names


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
GRAPH = {name: imported_modules(path) for name, path in MODULES.items()}


def test_the_stages_are_the_workflows():
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert subpackages == set(STAGES) - {"core"}
    rules = {p.stem for p in (PROJECT / "workflow/rules").glob("*.smk")}
    # Every stage but the shared Keras blocks (nn) names a rule file or its group of them.
    assert {"data", "teacher", "student", "evaluate"} <= rules


def backward_imports(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{module} ({stage_of(module)}) imports {target} ({stage_of(target)})"
        for module, targets in graph.items()
        for target in targets
        if STAGES.index(stage_of(target)) > STAGES.index(stage_of(module))
    ]


def import_cycles(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, str] = {}
    cycles = []

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*trail[trail.index(target) :], target]))
            elif target not in state:
                visit(target, [*trail, target])
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module, [module])
    return cycles


def test_imports_run_one_way_from_the_core_to_the_runs():
    assert backward_imports(GRAPH) == []


def test_no_import_cycle_between_modules():
    assert import_cycles(GRAPH) == []


def test_the_import_checks_see_a_backward_import_and_a_cycle(tmp_path):
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from skinkd.runs.suite import load_runs\n")
    assert imported_modules(source) == {"skinkd.runs.suite"}
    probe = {
        "skinkd.errors": set(),
        "skinkd.data.cache": {"skinkd.data.images", "skinkd.teacher.backbones.vit"},
        "skinkd.data.images": {"skinkd.data.cache", "skinkd.errors"},
    }
    assert backward_imports(probe) == [
        "skinkd.data.cache (data) imports skinkd.teacher.backbones.vit (teacher)"
    ]
    assert import_cycles(probe) == ["skinkd.data.cache -> skinkd.data.images -> skinkd.data.cache"]


@pytest.mark.parametrize("name", sorted(MODULES), ids=sorted(MODULES))
def test_no_module_is_over_400_lines(name):
    assert len(MODULES[name].read_text().splitlines()) <= MAX_LINES


EDGE_IMPORTS = """
import json, sys
import skinkd.edge, skinkd.edge.cli, skinkd.edge.evaluate, skinkd.edge.export
import skinkd.edge.inference, skinkd.edge.predict
skinkd.edge.cli.parser().parse_args(["predict", "model.tflite", "images/"])
heavy = ("tensorflow", "keras", "pandas", "snakemake", "torch", "jax", "matplotlib")
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(heavy))))
"""


def test_the_edge_and_its_command_line_load_no_heavy_framework():
    result = subprocess.run(
        [sys.executable, "-c", EDGE_IMPORTS], capture_output=True, text=True, cwd=PROJECT,
        timeout=120, check=True,
    )  # fmt: skip
    assert json.loads(result.stdout.splitlines()[-1]) == []


def test_the_edge_check_notices_a_heavy_import():
    probe = EDGE_IMPORTS.replace("import json, sys", "import json, sys, pandas")
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=PROJECT, timeout=120,
        check=True,
    )  # fmt: skip
    assert json.loads(result.stdout.splitlines()[-1]) == ["pandas"]

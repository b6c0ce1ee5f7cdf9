"""The package's layers, read from the source (no import runs): graphlake.core imports no stage,
a stage imports only the layers below it and never graphlake.app, no import circle between
modules, no private name imported from another module, function-level imports only where a
start-up reason is written down; and the SQL functions import without the training stack."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# import name -> folder (pyproject.toml [tool.setuptools.package-dir])
PACKAGE_DIRS = {"graphlake": "graphlake", "graphlake.etl": "etl", "graphlake.graph_build": "graph_build",
                "graphlake.training": "training", "graphlake.assets": "assets", "graphlake.udfs": "udfs"}
# bottom to top: a layer may import the layers before it, never one after it
LAYERS = ("core", "etl", "graph_build", "training", "assets", "udfs", "app")
# entry points whose function-level imports keep `graphlake --help`, the registry verbs and the DAG's
# parse light: `python -c "import graphlake.app.cli"` takes 0.7 s, importing every stage 10+ s
LAZY_MODULES = ("graphlake.app.cli", "graphlake.app.steps", "graphlake.app.stepkit", "graphlake.app.pipeline",
                "graphlake.app.demo", "graphlake.app.report", "graphlake.app.assets_cli")


def _modules() -> dict[str, Path]:
    out = {}
    for package, folder in PACKAGE_DIRS.items():
        base = ROOT / folder
        for path in base.rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if package == "graphlake" and parts and parts[0] not in ("core", "app"):
                continue  # only graphlake/__init__.py, core/ and app/ live in the graphlake folder
            out[".".join([package, *parts])] = path
    return out


MODULES = _modules()


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "root"


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _text(lines: list[str], node: ast.stmt) -> str:
    return "\n".join(lines[node.lineno - 1:node.end_lineno])


def _imports(module: str) -> list[tuple[str, str | None, int, bool, str]]:
    """``(imported module, imported name or None, line, at module top, source of the statement)``."""
    source = MODULES[module].read_text()
    tree = ast.parse(source)
    lines = source.splitlines()
    top = set(map(id, tree.body))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.append((alias.name, None, node.lineno, id(node) in top, _text(lines, node)))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                target = full if full in MODULES else node.module
                out.append((target, None if target == full else alias.name, node.lineno, id(node) in top,
                            _text(lines, node)))
    return out


EDGES = {m: [(t, name, line, top, text) for t, name, line, top, text in _imports(m) if t.split(".")[0] == "graphlake"]
         for m in MODULES}


def test_the_source_map_finds_every_layer():
    assert {_layer(m) for m in MODULES} == {"root", *LAYERS}
    assert "graphlake.core.lake" in MODULES and "graphlake.training.model.encoders" in MODULES


def test_each_layer_imports_only_the_layers_below_it():
    wrong = []
    for module, edges in EDGES.items():
        here = _layer(module)
        for target, _, line, _, _ in edges:
            there = _layer(_resolve(target) or target)
            if there == "root" or there == here:
                continue
            if here == "root" or LAYERS.index(there) > LAYERS.index(here):
                wrong.append(f"{module}:{line} ({here}) imports {target} ({there})")
    assert not wrong, "imports against the layer order " + " < ".join(LAYERS) + ":\n" + "\n".join(wrong)


def test_no_import_circle_between_modules():
    graph = {m: {_resolve(t) for t, *_ in edges} - {None, m} for m, edges in EDGES.items()}
    # a package's __init__ is imported with each of its modules: that is not a circle
    graph = {m: {t for t in targets if not m.startswith(t + ".")} for m, targets in graph.items()}
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


def test_no_private_name_is_imported_from_another_module():
    private = [f"{m}:{line} imports {name} from {t}" for m, edges in EDGES.items()
               for t, name, line, _, _ in edges if name and name.startswith("_") and not name.startswith("__")]
    assert not private, "\n".join(private)


def test_function_level_imports_say_why():
    unexplained = [f"{m}:{line}: {text.strip().splitlines()[0]}" for m, edges in EDGES.items() if m not in LAZY_MODULES
                   for _, _, line, top, text in edges if not top and "# lazy:" not in text]
    assert not unexplained, ("import graphlake modules at the top of the module, or say why not with a "
                             "`# lazy: <reason>` comment:\n" + "\n".join(unexplained))


@pytest.mark.parametrize("module", ["graphlake.udfs", "graphlake.assets.lifecycle", "graphlake.assets.bundle",
                                    "graphlake.app.cli"])
def test_reading_assets_and_the_sql_functions_need_no_training_stack(module):
    """The core install (no `train`/`text`/`airflow` extras) serves the assets and the gl_* functions."""
    blocked = ("torch", "sentence_transformers", "great_expectations", "airflow", "numba", "matplotlib")
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            f"        if name.split('.')[0] in {blocked!r}:\n"
            "            raise ImportError(f'blocked: {name}')\n"
            "sys.meta_path.insert(0, Block())\n"
            f"import {module}\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT),
                          env={**os.environ, "PYTHONPATH": ""}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_every_package_folder_is_in_the_installed_package_list():
    """pyproject.toml lists the packages explicitly (the stage folders map into graphlake): a new
    subpackage missing there would be absent from a wheel while an editable install still finds it."""
    import tomllib

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == PACKAGE_DIRS
    folders = {m for m, path in MODULES.items() if path.name == "__init__.py"}
    assert set(setuptools["packages"]) == folders, (sorted(folders - set(setuptools["packages"])),
                                                    sorted(set(setuptools["packages"]) - folders))

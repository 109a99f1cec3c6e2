"""The import rings of the architecture, checked on the AST and at import time.

Core and adapters (``pipeline/`` except its outer wiring, and ``udx/``) never import
Dagster, MCP, ``assets`` or ``mcp_server``, at any level; ``udx/`` ships alone into Vertica,
so it imports nothing from ``pipeline/`` and the kernels use no pandas. The outer wiring
inside ``pipeline/`` is named here by path (:data:`OUTER_WIRING`, the same list as the
"Three rings" of docs/design.md), not exempted by folder name: the command line, the
benchmarks and the fault campaigns. Nothing else imports them, and they import Dagster or
MCP only inside the function that needs them, so importing any ``pipeline`` module leaves
``dagster`` and ``mcp`` out of ``sys.modules``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The outer ring's files inside pipeline/ (docs/design.md, "Three rings", lists them).
OUTER_WIRING: tuple[str, ...] = (
    "pipeline/cli.py",
    "pipeline/commands",
    "pipeline/bench",
    "pipeline/faults",
)
OUTER_MODULES: tuple[str, ...] = (
    "pipeline.cli",
    "pipeline.commands",
    "pipeline.bench",
    "pipeline.faults",
)


def _is_outer(path: Path) -> bool:
    rel = path.relative_to(ROOT).as_posix()
    return any(rel == w or rel.startswith(f"{w}/") for w in OUTER_WIRING)


def _python_files(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if ".venv" not in p.parts)


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _top_level_imports(path: Path) -> set[str]:
    """Imports executed at module import time (not inside functions or TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _roots(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


@pytest.mark.parametrize("package", ["pipeline", "udx"])
def test_core_and_adapters_never_import_dagster_or_mcp_at_module_level(package: str) -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(
            _roots(_top_level_imports(p)) & {"dagster", "mcp", "assets", "mcp_server"}
        )
        for p in _python_files(package)
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_core_and_adapters_never_import_dagster_mcp_or_the_outer_ring_anywhere() -> None:
    outer = {"dagster", "mcp", "assets", "mcp_server"}
    offenders = {
        str(p.relative_to(ROOT)): sorted(
            (_roots(_imported_modules(p)) & outer)
            | {m for m in _imported_modules(p) if m.startswith(OUTER_MODULES)}
        )
        for pkg in ("pipeline", "udx")
        for p in _python_files(pkg)
        if not _is_outer(p)
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_outer_wiring_list_names_what_exists() -> None:
    # A renamed folder must not silently leave the list (and its files unchecked elsewhere).
    assert [w for w in OUTER_WIRING if not (ROOT / w).exists()] == []


def test_udx_ships_alone_without_pipeline_or_pandas() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(
            _roots(_imported_modules(p)) & {"pipeline", "pandas", "dagster", "mcp"}
        )
        for p in _python_files("udx")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_kernels_have_no_literal_fastmath() -> None:
    offenders = [str(p) for p in _python_files("udx") if "fastmath=True" in p.read_text()]
    assert offenders == []


def test_no_top_level_name_shadows_a_dependency() -> None:
    dependencies = {
        "dagster",
        "mcp",
        "duckdb",
        "numba",
        "numpy",
        "pandas",
        "scipy",
        "websockets",
        "orjson",
        "confluent_kafka",
        "vertica_python",
        "great_expectations",
        "pyarrow",
        "arch",
        "uvicorn",
        "httpx",
        "rich",
        "prometheus_client",
        "exchange_calendars",
        "matplotlib",
        "sqlalchemy",
    }
    names = {
        p.stem for pkg in ("pipeline", "udx", "assets", "mcp_server") for p in _python_files(pkg)
    }
    names |= {
        p.name
        for pkg in ("pipeline", "udx", "assets", "mcp_server")
        for p in (ROOT / pkg).rglob("*")
        if p.is_dir()
    }
    names |= {p.name for p in ROOT.iterdir()}
    assert names & dependencies == set()


def test_importing_every_pipeline_module_leaves_dagster_and_mcp_unloaded() -> None:
    modules = []
    for p in _python_files("pipeline"):
        rel = p.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules.append(".".join(parts))
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "loaded = sorted(n for n in ('dagster', 'mcp') if n in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == ""


def test_compute_command_does_not_load_dagster_or_mcp() -> None:
    code = (
        "import sys\n"
        "from pipeline.cli import build_parser\n"
        "build_parser().parse_args(['compute', '--help'] if False else [])\n"
        "print(','.join(sorted(n for n in ('dagster', 'mcp') if n in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == ""


def _marks_property(decorators: list[ast.expr]) -> bool:
    return any(ast.unparse(d) in {"pytest.mark.property", "mark.property"} for d in decorators)


def test_every_hypothesis_test_carries_the_property_marker() -> None:
    # `pytest -m property` must select every generated-input test (and `-m "not property"`
    # must leave them all out), so the marker is on each one or on its whole module.
    offenders = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        module_marked = any(
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets)
            and "property" in ast.unparse(node.value)
            for node in tree.body
        )
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            uses_given = any(
                isinstance(d, ast.Call) and ast.unparse(d.func).endswith("given")
                for d in node.decorator_list
            )
            if uses_given and not (module_marked or _marks_property(node.decorator_list)):
                offenders.append(f"{path.relative_to(ROOT)}::{node.name}")
    assert offenders == []

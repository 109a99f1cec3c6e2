"""The import rings of the architecture, checked on the AST and at import time.

Core and adapters (``pipeline/``, ``udx/``) never import Dagster or MCP; ``udx/``
ships alone into Vertica, so it imports nothing from ``pipeline/`` and the kernels
use no pandas. Importing any ``pipeline`` module leaves ``dagster`` and ``mcp``
out of ``sys.modules`` (the CLI imports them only inside the subcommands).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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
        if p.parent.name not in {"commands", "bench"}
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_pipeline_never_imports_dagster_or_mcp_anywhere_outside_the_cli_commands() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(_roots(_imported_modules(p)) & {"dagster", "mcp"})
        for p in _python_files("pipeline")
        if p.parent.name not in {"commands", "bench"} and p.name != "cli.py"
    }
    assert {k: v for k, v in offenders.items() if v} == {}


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

"""The Docker files describe the same stack as the local setup (validated without an engine).

No Docker engine runs on the CI machine, so the compose file is checked without one: it
validates against the Compose specification's JSON schema (``check-jsonschema``'s vendored
copy, offline), every service is built from our Dockerfile or names a pinned image, every
``microstructure`` command in it parses with the real CLI parser, every variable it sets is
one the code reads, and published ports bind the host's loopback only.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.cli import build_parser
from pipeline.settings import SETTINGS_DOC

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
DOCKERFILE = (ROOT / "docker" / "Dockerfile").read_text()


def _services() -> dict[str, dict[str, Any]]:
    return COMPOSE["services"]


def test_compose_has_the_whole_stack() -> None:
    assert {
        "kafka",
        "kafka-init",
        "streamer",
        "live-signals",
        "dagster-webserver",
        "dagster-daemon",
        "mcp",
    } <= set(_services())


def test_compose_file_is_valid_against_the_compose_specification_schema() -> None:
    """The schema ``docker compose config`` validates against (compose-spec, vendored)."""
    ok = _check_compose(ROOT / "docker" / "compose.yaml")
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_the_schema_check_refuses_a_misspelt_key(tmp_path: Path) -> None:
    bad = tmp_path / "compose.yaml"
    bad.write_text("services:\n  kafka:\n    image: apache/kafka:4.1.1\n    restartt: always\n")
    refused = _check_compose(bad)
    assert refused.returncode != 0
    assert "restartt" in refused.stdout


def _check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_every_service_has_a_pinned_image_or_our_build() -> None:
    for name, svc in _services().items():
        if "build" in svc:
            assert svc["build"]["dockerfile"] == "docker/Dockerfile", name
        else:
            image = svc["image"]
            assert re.match(r"^[\w./-]+:v?\d+\.\d+(\.\d+)?$", image), (
                f"{name}: unpinned image {image}"
            )


@pytest.mark.parametrize(
    "name",
    [
        n
        for n, s in yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())[
            "services"
        ].items()
        if "build" in s and "entrypoint" not in s
    ],
)
def test_microstructure_commands_in_compose_parse(name: str) -> None:
    command = [str(c) for c in _services()[name]["command"]]
    command = [re.sub(r"\$\{[^}]*\}", "X", c) for c in command]
    args = build_parser().parse_args(command)
    assert callable(args.func)


def test_compose_sets_only_variables_the_code_reads() -> None:
    known = {part for key in SETTINGS_DOC for part in key.split(" / ")} | {"DAGSTER_HOME"}
    for name, svc in _services().items():
        if "build" not in svc:
            continue
        for var in svc.get("environment", {}):
            assert var in known, f"{name} sets {var}, which nothing reads"


def test_published_ports_bind_loopback_only() -> None:
    for name, svc in _services().items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_dockerfile_installs_from_the_lock_and_drops_root() -> None:
    assert "uv sync --frozen --no-dev" in DOCKERFILE
    assert re.search(r"^USER \w+", DOCKERFILE, flags=re.MULTILINE)
    assert 'ENTRYPOINT ["microstructure"]' in DOCKERFILE
    for path in ("pipeline", "udx", "assets", "mcp_server", "sql", "workspace.yaml"):
        assert f"COPY {path}" in DOCKERFILE


def test_dagster_instance_config_limits_ingest_to_one_run_per_partition() -> None:
    cfg = yaml.safe_load((ROOT / "docker" / "dagster.yaml").read_text())
    limits = cfg["concurrency"]["runs"]["tag_concurrency_limits"]
    assert any(
        lim["key"] == "ingest/tp"
        and lim["limit"] == 1
        and lim["value"] == {"applyLimitPerUniqueValue": True}
        for lim in limits
    )

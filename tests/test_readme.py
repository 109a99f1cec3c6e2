"""The README stays true: its settings table and command table match the code."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.cli import build_parser
from pipeline.settings import SETTINGS_DOC

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_lists_every_setting() -> None:
    names = [part for name in SETTINGS_DOC for part in name.split(" / ")]
    missing = [name for name in names if f"`{name}`" not in README]
    assert missing == []


def test_readme_command_table_names_only_real_commands() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    real = set(sub.choices)  # type: ignore[arg-type]
    documented = set(re.findall(r"^\| `([a-z-]+)", README, flags=re.MULTILINE))
    assert documented <= real, documented - real
    assert real <= documented, real - documented


def test_readme_shows_the_two_setup_commands() -> None:
    assert "make demo" in README
    assert "make test" in README

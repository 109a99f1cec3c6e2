"""Fixtures of the Vertica tests.

There is no Vertica server on this machine or in CI (the Community Edition images were
withdrawn in 2025 and no emulator exists), so three kinds of test live here:

- the ``batch_microstructure`` UDx runs through a strict stand-in for ``vertica_sdk``
  (``tests/support/vertica_sdk``), loaded by path as Vertica loads a library file;
- every Vertica SQL file is parsed by sqlfluff's ``vertica`` dialect, and the statements
  it cannot parse are checked by narrower string tests that say why;
- the warehouse contract suite (``tests/warehouse/test_contract.py``) and the tests marked
  ``vertica`` run against a real instance only when ``VERTICA_HOST`` (and ``VERTICA_DB``,
  ``VERTICA_USER``, ``VERTICA_PASSWORD``, optionally ``VERTICA_PORT``/``VERTICA_TLSMODE``)
  are set: ``make test-vertica``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

import tests.support.vertica_sdk as sdk

ROOT = Path(__file__).resolve().parents[2]
UDX_FILE = ROOT / "udx" / "vertica" / "batch_microstructure.py"


def load_udx() -> ModuleType:
    """Load ``batch_microstructure.py`` by path with the stand-in as ``vertica_sdk``."""
    previous = sys.modules.get("vertica_sdk")
    sys.modules["vertica_sdk"] = sdk
    try:
        spec = importlib.util.spec_from_file_location("batch_microstructure", UDX_FILE)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if previous is None:
            sys.modules.pop("vertica_sdk", None)
        else:
            sys.modules["vertica_sdk"] = previous
    return module


@pytest.fixture(scope="session")
def udx() -> ModuleType:
    """The UDx module, loaded once per session against the stand-in SDK."""
    return load_udx()

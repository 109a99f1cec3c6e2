"""``python -m mcp_server [--http ...]``: the same as ``microstructure serve-mcp``."""

from __future__ import annotations

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve-mcp", *sys.argv[1:]]))

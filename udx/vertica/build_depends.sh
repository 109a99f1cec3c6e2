#!/usr/bin/env bash
# Build the DEPENDS directory of the batch_microstructure UDx with Vertica's own interpreter.
#
#   udx/vertica/build_depends.sh DEST_DIR [--no-numba]
#
# Run on the Vertica initiator node, from the project root, as a user who can read
# /opt/vertica. It creates
#   DEST_DIR/batch_microstructure.py   the UDx (CREATE LIBRARY ... AS this file)
#   DEST_DIR/site-packages/            numpy, scipy, optionally numba + llvmlite, and the
#                                      udx package (udx/__init__.py + udx/kernels) only
# and prints the vsql command that installs it (udx/vertica/install.sql).
#
# Why Vertica's interpreter: Python UDxs run only on the Python bundled with Vertica
# (/opt/vertica/sbin/python3 --version), so compiled wheels (numpy, scipy, llvmlite) must
# match its ABI. Pin numba's wheel to that Python, or pass --no-numba: the kernels then run
# their plain-Python twins (same numbers, slower) and log one PerformanceWarning; set
# MICRO_DISABLE_NUMBA=1 in the UDx environment to force that even where numba imports.
set -euo pipefail

DEST="${1:?usage: build_depends.sh DEST_DIR [--no-numba]}"
WITH_NUMBA=1
if [[ "${2:-}" == "--no-numba" ]]; then WITH_NUMBA=0; fi
VPY="${VERTICA_PYTHON:-/opt/vertica/sbin/python3}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"

if [[ ! -x "$VPY" ]]; then
  echo "Vertica's Python not found at $VPY (set VERTICA_PYTHON)" >&2
  exit 2
fi
echo "Vertica Python: $("$VPY" --version 2>&1)"

mkdir -p "$DEST/site-packages"
SITE="$(cd "$DEST/site-packages" && pwd)"

# Versions the kernels are tested with; pip picks wheels for Vertica's Python version.
PKGS=("numpy>=1.24" "scipy>=1.10")
if [[ "$WITH_NUMBA" == 1 ]]; then PKGS+=("numba>=0.58"); fi
"$VPY" -m pip install --no-cache-dir --upgrade --target "$SITE" "${PKGS[@]}"

# The kernels, and nothing of pipeline/ (udx ships alone: tests/test_architecture.py).
rm -rf "$SITE/udx"
mkdir -p "$SITE/udx"
cp "$ROOT/udx/__init__.py" "$SITE/udx/"
cp -R "$ROOT/udx/kernels" "$SITE/udx/kernels"
find "$SITE/udx" -name '__pycache__' -prune -exec rm -rf {} +
cp "$ROOT/udx/vertica/batch_microstructure.py" "$DEST/"

# Import check with the same interpreter, as the fenced process will do it.
MICRO_QUIET=1 PYTHONPATH="$SITE" "$VPY" -c \
  "import udx.kernels as k; print('udx.kernels', k.KERNEL_VERSION, 'numba' if k.NUMBA_ENABLED else 'plain Python')"

ABS="$(cd "$DEST" && pwd)"
echo
echo "Install with:"
echo "  vsql -v library=\"'$ABS/batch_microstructure.py'\" -v depends=\"'$ABS/site-packages/'\" -f $ROOT/udx/vertica/install.sql"

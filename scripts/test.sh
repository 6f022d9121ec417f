#!/usr/bin/env bash
# The test command: set up the environment (idempotent), then lint and run every test.
#   scripts/test.sh                 # everything (what CI runs)
#   scripts/test.sh test/core -k scra   # extra arguments go to pytest
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RADSEG_VENV:-$ROOT/.venv}"

"$ROOT/scripts/setup_env.sh"
cd "$ROOT"
echo "[test] ruff check"
"$VENV/bin/ruff" check .
echo "[test] pytest"
# The pytest executable (not `python -m pytest`) keeps the source radseg_ros/ off sys.path, so
# `radseg_ros.srv` comes from the built package installed in the environment.
exec "$VENV/bin/pytest" "$@"

#!/usr/bin/env bash
# Lint and format check (ruff, configured in ruff.toml); part of `make test`, so CI fails on a lint error.
#   scripts/lint.sh          check only
#   scripts/lint.sh --fix    apply safe fixes and format
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUFF="${VENV:-$REPO/.venv}/bin/ruff"
cd "$REPO"
if [ "${1:-}" = "--fix" ]; then
  "$RUFF" check --fix .
  "$RUFF" format .
else
  "$RUFF" check .
  "$RUFF" format --check .
fi

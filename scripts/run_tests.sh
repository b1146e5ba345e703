#!/usr/bin/env bash
# Runs the whole test suite in the project's venv (scripts/setup.sh must have run; `make test` does both).
# Extra arguments go to pytest, e.g. scripts/run_tests.sh -k voting -x
#   scripts/run_tests.sh --fast [ARGS]   the fast tier only (`make test-fast`): tests without the `ros` or
#                                        `process` marker, which start no process (test/conftest.py refuses one)
set -euo pipefail
FAST_TIER="not ros and not process"
if [ "${1:-}" = "--fast" ]; then
  shift
  set -- -m "$FAST_TIER" "$@"
fi
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$REPO/.venv}"
export AMENT_PREFIX_PATH="$VENV"
export PATH="$VENV/bin:$PATH"
# DDS stays on this machine; each test gets its own ROS_DOMAIN_ID on top of this (test/conftest.py).
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export PYTHONUNBUFFERED=1
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
cd "$REPO"
exec "$VENV/bin/python" -m pytest "$@"

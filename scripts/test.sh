#!/usr/bin/env bash
# Run the tests.
#   bash scripts/test.sh [PYTEST-ARGS...]        the whole suite (unit + integration
#                                                against real pydockerd daemons)
#   bash scripts/test.sh unit [PYTEST-ARGS...]   tests/unit only: no daemon, seconds
# Everything the tests need is in the repository (test images are built offline by
# src/pydockerd/testing); nothing beside the clone is used.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = unit ]; then
  shift
  # unit tests import pydockerd from src/; install only what is missing
  python3 -m pip show -q pydockerd >/dev/null 2>&1 || PYDOCKERD_NO_START=1 bash scripts/install.sh >/dev/null
  exec python3 -m pytest -q -p no:cacheprovider "$@" tests/unit
fi
PYDOCKERD_NO_START=1 bash scripts/install.sh >/dev/null
exec python3 -m pytest -q -p no:cacheprovider "$@" tests

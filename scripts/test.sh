#!/usr/bin/env bash
# Run the whole test suite (unit + integration against real pydockerd daemons).
set -uo pipefail
cd "$(dirname "$0")/.."
PYDOCKERD_NO_START=1 bash scripts/install.sh >/dev/null
exec python3 -m pytest -q -p no:cacheprovider "$@" tests

#!/usr/bin/env bash
# Sets up the environment and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
venv="${LEANGPT_VENV:-.venv}"
shakespeare="../shared/data/tinyshakespeare/input.txt"
if [ -z "${LEANGPT_TINYSHAKESPEARE:-}" ] && [ -f "$shakespeare" ]; then
  export LEANGPT_TINYSHAKESPEARE="$(cd "$(dirname "$shakespeare")" && pwd)/input.txt"
fi
"$venv/bin/python" -m pytest -q "$@"

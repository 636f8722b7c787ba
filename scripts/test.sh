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
if [ -z "${LEANGPT_TINYSHAKESPEARE:-}" ]; then
  echo "note: LEANGPT_TINYSHAKESPEARE is not set, so the test that prepares the real tinyshakespeare text" \
       "(tests/test_data.py) is skipped; run LEANGPT_TINYSHAKESPEARE=path/to/input.txt bash scripts/test.sh to include it"
fi
"$venv/bin/python" -m pytest -q "$@"

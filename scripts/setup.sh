#!/usr/bin/env bash
# Creates (or reuses) the virtual environment $LEANGPT_VENV (default .venv) with leangpt installed.
# torch is pinned here to the CPU build; the package itself asks only for torch>=2.5.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${LEANGPT_VENV:-.venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -c "import torch" 2>/dev/null || "$venv/bin/python" -m pip install -q "torch==${LEANGPT_TORCH:-2.13.0}"
"$venv/bin/python" -m pip install -q -e '.[dev,plots]'

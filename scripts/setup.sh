#!/usr/bin/env bash
# Creates (or reuses) the virtual environment $LEANGPT_VENV (default .venv) with leangpt installed.
# torch is pinned here to the CPU build; the package itself asks only for torch>=2.5.
# The editable install is redone only when pyproject.toml changed since the last one.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${LEANGPT_VENV:-.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
fi
stamp="$venv/.leangpt-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && "$venv/bin/python" -c "import torch, leangpt, pytest, matplotlib, pytorch_optimizer, torchao, tiktoken, tokenizers, safetensors, transformers" 2>/dev/null; then
  exit 0
fi
"$venv/bin/python" -c "import torch" 2>/dev/null || "$venv/bin/python" -m pip install -q "torch==${LEANGPT_TORCH:-2.13.0}"
"$venv/bin/python" -m pip install -q -e '.[dev,plots,optimizers,data]'
echo "$want" > "$stamp"
command -v g++ >/dev/null || command -v clang++ >/dev/null || \
  echo "note: no C++ compiler on PATH: --compile=True on CPU (torch.compile's C++ backend) will be refused"

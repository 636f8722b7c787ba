#!/usr/bin/env bash
# Creates (or reuses) the virtual environment $LEANGPT_VENV (default .venv) with leangpt installed.
# torch is pinned here (LEANGPT_TORCH, default 2.13.0); the package itself asks only for torch>=2.5.
# On Linux without an NVIDIA GPU (no nvidia-smi) torch comes from PyTorch's CPU index: the default
# index's Linux wheel is the CUDA build, gigabytes of libraries a CPU never uses. LEANGPT_TORCH_INDEX
# names another index (LEANGPT_TORCH_INDEX=default: the default index, whatever the machine).
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
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  torch="torch==${LEANGPT_TORCH:-2.13.0}"
  index="${LEANGPT_TORCH_INDEX:-}"
  if [ -z "$index" ] && [ "$(uname -s)" = Linux ] && ! command -v nvidia-smi >/dev/null; then
    index=https://download.pytorch.org/whl/cpu
    # unreachable (a network that allows only PyPI): the default index, rather than a long wait
    if ! "$venv/bin/python" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)" \
        "$index/torch/" >/dev/null 2>&1; then
      echo "note: PyTorch's CPU index ($index) cannot be reached: installing $torch from the default index"
      index=default
    fi
  fi
  if [ -n "$index" ] && [ "$index" != default ]; then
    echo "installing $torch from $index (LEANGPT_TORCH_INDEX=default: from the default index)"
    "$venv/bin/python" -m pip install -q "$torch" --index-url "$index" || {
      echo "note: $torch did not install from $index: installing it from the default index"
      "$venv/bin/python" -m pip install -q "$torch"; }
  else
    "$venv/bin/python" -m pip install -q "$torch"
  fi
fi
"$venv/bin/python" -m pip install -q -e '.[dev,plots,optimizers,data]'
echo "$want" > "$stamp"
command -v g++ >/dev/null || command -v clang++ >/dev/null || \
  echo "note: no C++ compiler on PATH: --compile=True on CPU (torch.compile's C++ backend) will be refused"

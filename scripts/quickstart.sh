#!/usr/bin/env bash
# The main job from a fresh clone: environment, tinyshakespeare, the course's CPU run, a sample.
#   bash scripts/quickstart.sh [path/to/input.txt]
# The text comes from the argument, else $LEANGPT_TINYSHAKESPEARE, else it is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
py="${LEANGPT_VENV:-.venv}/bin/python"
input="${1:-${LEANGPT_TINYSHAKESPEARE:-}}"
"$py" data/shakespeare_char/prepare.py ${input:+--input="$input"}
# the fastest mode whose quality holds on this CPU (docs/benchmarks.md): bf16 autocast where the
# CPU has bf16 instructions, else nanoGPT's fp32
dtype="$("$py" -c 'from leangpt.device import fastest_cpu_dtype; print(fastest_cpu_dtype())')"
if [ "$dtype" = bfloat16 ]; then
  echo "this CPU has bf16 instructions: training in bfloat16 autocast (--dtype=float32 gives nanoGPT's fp32 math)"
fi
"$py" train.py config/train_shakespeare_char.py --device=cpu --compile=False --eval_iters=20 --log_interval=100 \
  --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 \
  --dropout=0.0 --dtype="$dtype"
"$py" sample.py --out_dir=out-shakespeare-char --device=cpu --num_samples=1 --max_new_tokens=500
echo
echo "done. Activate the environment before the README's other commands: source ${LEANGPT_VENV:-.venv}/bin/activate"

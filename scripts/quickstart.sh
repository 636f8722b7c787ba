#!/usr/bin/env bash
# The main job from a fresh clone: environment, tinyshakespeare, the course's CPU run, a sample.
#   bash scripts/quickstart.sh [path/to/input.txt]            # 2000 iterations, into out-shakespeare-char
#   QUICK=1 bash scripts/quickstart.sh [path/to/input.txt]    # 300 iterations, into out-shakespeare-char-quick
# The text comes from the argument, else $LEANGPT_TINYSHAKESPEARE, else it is downloaded.
# Ctrl-C (or SIGTERM) during training stops it with a checkpoint; the script then samples from
# that checkpoint and prints the command that continues the run (exit status 130).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
venv="${LEANGPT_VENV:-.venv}"
py="$venv/bin/python"
input="${1:-${LEANGPT_TINYSHAKESPEARE:-}}"
"$py" data/shakespeare_char/prepare.py ${input:+--input="$input"}
# the fastest mode whose quality holds on this CPU (docs/benchmarks.md): bf16 autocast where the
# CPU has bf16 instructions, else nanoGPT's fp32
dtype="$("$py" -c 'from leangpt.device import fastest_cpu_dtype; print(fastest_cpu_dtype())')"
if [ "$dtype" = bfloat16 ]; then
  echo "this CPU has bf16 instructions: training in bfloat16 autocast (--dtype=float32 gives nanoGPT's fp32 math)"
fi
iters=2000 out_dir=out-shakespeare-char
if [ "${QUICK:-0}" = 1 ]; then
  iters=300 out_dir=out-shakespeare-char-quick
fi
args=(config/train_shakespeare_char.py --device=cpu --compile=False --eval_iters=20 --log_interval=100
      --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters="$iters"
      --lr_decay_iters="$iters" --dropout=0.0 --dtype="$dtype" --out_dir="$out_dir")
started="$(mktemp)"
# training runs in a process group of its own (set -m), so that a terminal's Ctrl-C reaches it
# once, through this script, as a SIGTERM to the script does: the first one checkpoints and stops
set -m
"$py" train.py "${args[@]}" &
trainer=$!
set +m
trap 'kill -INT "$trainer" 2>/dev/null || true' INT
trap 'kill -TERM "$trainer" 2>/dev/null || true' TERM
while :; do
  wait "$trainer" && status=0 || status=$?
  kill -0 "$trainer" 2>/dev/null || break  # else a signal ended the wait, not the trainer: wait on
done
trap - INT TERM
sample=(sample.py --out_dir="$out_dir" --device=cpu --num_samples=1 --max_new_tokens=500)
if [ "$status" -ne 0 ]; then
  if [ "$status" -eq 130 ] && [ "$out_dir/ckpt.pt" -nt "$started" ]; then
    echo "training was interrupted; a sample from its checkpoint:"
    "$py" "${sample[@]}"
    echo
    echo "continue this run where it stopped (from $PWD, after source $venv/bin/activate):"
    echo "    python train.py ${args[*]} --init_from=resume"
    echo "then sample it again: python ${sample[*]}"
  elif [ "$status" -eq 130 ]; then
    echo "training was interrupted before its first checkpoint: nothing to sample; run this script again"
  fi
  rm -f "$started"
  exit "$status"
fi
rm -f "$started"
"$py" "${sample[@]}"
echo
echo "done. Activate the environment before the README's other commands: source $venv/bin/activate"

#!/usr/bin/env bash
# One prepared GPU check: trains the 6x384, block-256 config for ITERS iterations in fp32, bf16 and
# bf16 + torch.compile (AdamW is fused on CUDA), prints ms/iter, tokens/s, MFU and
# torch.cuda.max_memory_allocated for each; with more than one GPU visible it also runs 2-rank
# DDP and ZeRO and checks them against one process.
#   bash bench/gpu_check.sh [path/to/input.txt] [ITERS=300] [PEAK_TFLOPS=989]
# PEAK_TFLOPS is the card's dense bf16 peak used for MFU (989 for H100/H200 SXM).
set -euo pipefail
cd "$(dirname "$0")/.."
input="${1:-${LEANGPT_TINYSHAKESPEARE:-}}"
iters="${2:-${ITERS:-300}}"
export PEAK_TFLOPS="${3:-989}"
py="${PYTHON:-python}"
work="$(mktemp -d)"
if [ -z "$input" ] || [ ! -f "$input" ]; then  # no text given (the machine may be offline): this repo's own text
  input="$work/corpus.txt"
  cat README.md docs/*.md leangpt/*.py > "$input"
fi
"$py" -m leangpt prepare --input="$input" --name=gpucheck --data_dir="$work/data" >/dev/null
"$py" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU', torch.cuda.device_count(), 'GPU(s)')"
device="${DEVICE:-cuda}"  # DEVICE=cpu ITERS=15 EXTRA="--batch_size=2 --block_size=32": a dry run of the plumbing
common=(--data_dir="$work/data" --dataset=gpucheck --device="$device" --n_layer=6 --n_head=6 --n_embd=384
        --block_size=256 --batch_size=64 --gradient_accumulation_steps=1 --max_iters="$iters"
        --lr_decay_iters="$iters" --warmup_iters=20 --eval_interval=100000 --eval_iters=1 --log_interval=1
        --dropout=0.0 --learning_rate=1e-3 --min_lr=1e-4 --always_save_checkpoint=False ${EXTRA:-})
run() {  # name, extra args...
  local name="$1"; shift
  "$py" -m leangpt train "${common[@]}" --out_dir="$work/$name" "$@" > "$work/$name.log" 2>&1 || { tail -5 "$work/$name.log"; return 1; }
  "$py" - "$work/$name" "$name" <<'PY'
import json, os, statistics, sys
from pathlib import Path
out, name = Path(sys.argv[1]), sys.argv[2]
records = [json.loads(line) for line in open(out / "metrics.jsonl")]
ms = [r["ms"] for r in records if r["kind"] == "train"][5:]  # the first steps compile / warm up
end = next(r for r in records if r["kind"] == "end")
cfg = json.loads((out / "config.json").read_text())
mem = next((r for r in records if r["kind"] == "memory"), {})
n_params, L, H, T, C = mem["params"], cfg["n_layer"], cfg["n_head"], cfg["block_size"], cfg["n_embd"]
tokens = cfg["batch_size"] * T * cfg["gradient_accumulation_steps"]
median = statistics.median(ms)
flops_per_token = 6 * n_params + 12 * L * H * (C // H) * T  # nanoGPT's estimate (PaLM appendix B)
mfu = flops_per_token * tokens / (median / 1000) / (float(os.environ["PEAK_TFLOPS"]) * 1e12)
first = next(r["ms"] for r in records if r["kind"] == "train")
allocated = end.get("cuda_max_allocated_bytes")
print(f"{name:12s} {median:8.2f} ms/iter (first logged step {first:.0f} ms)  {tokens / median * 1000:10.0f} tokens/s  "
      f"MFU {100 * mfu:5.1f}%  max_memory_allocated {allocated / 2**20 if allocated else float('nan'):.0f} MiB  "
      f"final loss {[r for r in records if r['kind'] == 'train'][-1]['loss']:.4f}")
PY
}
run fp32 --dtype=float32 --compile=False
run bf16 --dtype=bfloat16 --compile=False
run bf16-compile --dtype=bfloat16 --compile=True
run bf16-batch128 --dtype=bfloat16 --compile=False --batch_size=128  # the global batch of the 2-rank runs
if [ "$("$py" -c 'import torch; print(torch.cuda.device_count())')" -gt 1 ]; then
  for zero in False True; do
    "$py" -m torch.distributed.run --standalone --nproc_per_node=2 -m leangpt train "${common[@]}" \
      --out_dir="$work/ddp-$zero" --dtype=bfloat16 --compile=False --zero=$zero --gradient_accumulation_steps=2 \
      > "$work/ddp-$zero.log" 2>&1 || { tail -5 "$work/ddp-$zero.log"; exit 1; }
    echo "2 ranks x 64, zero=$zero: $(grep -E '^iter' "$work/ddp-$zero.log" | tail -1)  (compare: bf16-batch128's final loss)"
  done
fi
rm -rf "$work"

# Does a fast mode keep the quality of fp32 eager? The seed CPU run (MHA, AdamW at its tuned
# learning rate) in fp32 eager, bf16 autocast, torch.compile, and both, over 3 seeds, each final
# val loss over 200 batches (eval noise std 0.004: bench/eval_noise.py).
#   leangpt sweep config/sweep_fast_modes.py     (writes sweeps/sweep_fast_modes/report.md)
#   python bench/fast_quality.py sweeps/sweep_fast_modes   (mean of the seeds per mode)
# The ms/iter of a sweep are not a speed comparison: bench/bench_fast.py measures that.
out_dir = "out-sweep"  # each run gets SWEEP_DIR/runs/NAME instead
dataset = "shakespeare_char"
device = "cpu"
eval_interval = 1000
eval_iters = 200
log_interval = 10
always_save_checkpoint = False
gradient_accumulation_steps = 1
batch_size = 12
block_size = 64
n_layer = 4
n_head = 4
n_embd = 128
dropout = 0.0
optimizer_variant = "adamw"
learning_rate = 5e-3
min_lr = 5e-4
max_iters = 2000
lr_decay_iters = 2000
beta2 = 0.99
warmup_iters = 100

variants = [
    {"dtype": "float32", "compile": False},
    {"dtype": "bfloat16", "compile": False},
    {"dtype": "float32", "compile": True},
    {"dtype": "bfloat16", "compile": True},
]
grid = {"seed": [1337, 1338, 1339]}

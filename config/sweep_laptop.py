# Presets between the seed CPU run and nanoGPT's 6x384 model, for a laptop CPU: each trains on
# tinyshakespeare in minutes, fp32, AdamW at the config's lr 1e-3 (docs/laptop.md has the measured
# ms/iter, wall time and val loss, and how to choose with `leangpt memory` and the ETA).
#   leangpt sweep config/sweep_laptop.py          (writes sweeps/sweep_laptop/report.md)
out_dir = "out-sweep"  # each run gets SWEEP_DIR/runs/NAME instead
dataset = "shakespeare_char"
device = "cpu"
compile = False
eval_interval = 250
eval_iters = 20
log_interval = 50
always_save_checkpoint = False
gradient_accumulation_steps = 1
batch_size = 12
dropout = 0.0
learning_rate = 1e-3
min_lr = 1e-4
beta2 = 0.99
warmup_iters = 100
optimizer_variant = "adamw"

variants = [
    # the course's seed run: 0.80M parameters, 768 tokens per iteration
    {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "max_iters": 2000, "lr_decay_iters": 2000},
    # wider, twice the context: 1.81M parameters, 1,536 tokens per iteration
    {"n_layer": 4, "n_head": 4, "n_embd": 192, "block_size": 128, "max_iters": 1500, "lr_decay_iters": 1500},
    # deeper and wider: 4.77M parameters, 1,536 tokens per iteration
    {"n_layer": 6, "n_head": 4, "n_embd": 256, "block_size": 128, "max_iters": 1000, "lr_decay_iters": 1000},
]

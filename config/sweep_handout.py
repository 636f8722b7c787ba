# The handout's two parts as it gives them: its seed CPU run (4x128, block 64, batch 12, 2000
# iterations, eval_iters 20, the config's lr 1e-3), Part 1 with GQA (n_headgroup=2) and AdamW,
# Part 2 with standard multi-head attention and AdamSN, then Adafactor; each also at its tuned
# settings (config/tuned_*.py).
#   leangpt sweep config/sweep_handout.py          (writes sweeps/sweep_handout/report.md)
out_dir = "out-sweep"  # each run gets SWEEP_DIR/runs/NAME instead
dataset = "shakespeare_char"
device = "cpu"
compile = False
eval_interval = 250
eval_iters = 20
log_interval = 10
always_save_checkpoint = False
gradient_accumulation_steps = 1
batch_size = 12
block_size = 64
n_layer = 4
n_head = 4
n_embd = 128
dropout = 0.0
learning_rate = 1e-3
max_iters = 2000
lr_decay_iters = 2000
min_lr = 1e-4
beta2 = 0.99
warmup_iters = 100

variants = [
    {"n_headgroup": 2, "optimizer_variant": "adamw"},
    {"n_headgroup": 2, "optimizer_variant": "adamw", "learning_rate": 5e-3, "min_lr": 5e-4},
    {"n_headgroup": 1, "optimizer_variant": "adamsn"},
    {"n_headgroup": 1, "optimizer_variant": "adamsn", "learning_rate": 5e-2, "min_lr": 5e-3, "weight_decay": 6e-3},
    {"n_headgroup": 1, "optimizer_variant": "adafactor"},
    {"n_headgroup": 1, "optimizer_variant": "adafactor", "learning_rate": 5e-2, "min_lr": 5e-3, "weight_decay": 0.0},
]

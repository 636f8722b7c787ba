# The course's optimizer experiment: the seed CPU run (MHA) with each optimizer at its tuned learning rate.
#   leangpt sweep config/sweep_optim.py          (writes sweeps/sweep_optim/report.md)
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
max_iters = 2000
lr_decay_iters = 2000
beta2 = 0.99
warmup_iters = 100

# tuned on this config by config/sweep_lr.py (config/tuned_*.py hold the same values)
variants = [
    {"optimizer_variant": "adam", "learning_rate": 3e-3, "min_lr": 3e-4},
    {"optimizer_variant": "adamw", "learning_rate": 5e-3, "min_lr": 5e-4},
    {"optimizer_variant": "adamsn", "learning_rate": 5e-2, "min_lr": 5e-3, "weight_decay": 6e-3},
    {"optimizer_variant": "adafactor", "learning_rate": 5e-2, "min_lr": 5e-3, "weight_decay": 0.0},
]

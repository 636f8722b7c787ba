# Every optimizer variant at its tuned setting on the seed CPU config (MHA), evaluated on 200
# batches (val-loss noise: standard deviation 0.004, bench/eval_noise.py). The settings are those of
# config/tuned_<variant>.py, found by config/sweep_lr_field.py; README "The optimizer field".
#   leangpt sweep config/sweep_optim_all.py      (13 runs, about 40 minutes on 2 cores)
out_dir = "out-sweep"  # each run gets SWEEP_DIR/runs/NAME instead
dataset = "shakespeare_char"
device = "cpu"
compile = False
eval_interval = 1000
eval_iters = 200
log_interval = 50
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

variants = [
    {"optimizer_variant": "adamw", "learning_rate": 0.005, "min_lr": 0.0005},
    {"optimizer_variant": "adam", "learning_rate": 0.003, "min_lr": 0.0003},
    {"optimizer_variant": "adamsn", "learning_rate": 0.05, "min_lr": 0.005, "weight_decay": 0.006},
    {"optimizer_variant": "adafactor", "learning_rate": 0.05, "min_lr": 0.005, "weight_decay": 0.0},
    {"optimizer_variant": "adamsnsm", "learning_rate": 0.05, "min_lr": 0.005, "weight_decay": 0.01, "adamsnsm_rank": 32},
    {"optimizer_variant": "muon", "learning_rate": 0.005, "min_lr": 0.0005},
    {"optimizer_variant": "lion", "learning_rate": 0.0005, "min_lr": 5e-05, "weight_decay": 1.0},
    {"optimizer_variant": "adam_mini", "learning_rate": 0.005, "min_lr": 0.0005},
    {"optimizer_variant": "came", "learning_rate": 0.0005, "min_lr": 5e-05},
    {"optimizer_variant": "sm3", "learning_rate": 0.03, "min_lr": 0.003},
    {"optimizer_variant": "galore", "learning_rate": 0.05, "min_lr": 0.005, "weight_decay": 0.01, "galore_rank": 32},
    {"optimizer_variant": "apollo", "learning_rate": 0.02, "min_lr": 0.002, "apollo_rank": 32},
    {"optimizer_variant": "adamw8bit", "learning_rate": 0.008, "min_lr": 0.0008},
]

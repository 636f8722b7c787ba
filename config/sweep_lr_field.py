# The learning-rate sweep behind the optimizer-field table (docs/optim_field.md): the seed CPU config (MHA),
# every variant of the field at 4 learning rates, plus the course's four variants at their tuned
# settings, all evaluated on 200 batches (eval noise below 0.005; docs/optimizers.md).
#   leangpt sweep config/sweep_lr_field.py      (45 runs x about 2 min on 2 cores)
# min_lr is learning_rate / 10 in every run. Where a method's decoupled weight decay multiplies a
# learning rate far from AdamW's (Lion, GaLore, AdamSNSM), weight_decay is scaled to keep
# lr * weight_decay at AdamW's tuned 5e-3 * 0.1 = 5e-4 per step.
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
# the low-rank methods at a quarter of the width (the GaLore paper's 128 of 512 at 60M)
adamsnsm_rank = 32
galore_rank = 32
apollo_rank = 32


def _runs(variant, rates, scale_decay=False, **extra):
    return [{"optimizer_variant": variant, "learning_rate": lr, "min_lr": lr / 10, **extra,
             **({"weight_decay": round(5e-4 / lr, 6)} if scale_decay else {})} for lr in rates]


variants = [
    {"optimizer_variant": "adamw", "learning_rate": 5e-3, "min_lr": 5e-4},
    {"optimizer_variant": "adam", "learning_rate": 3e-3, "min_lr": 3e-4},
    {"optimizer_variant": "adamsn", "learning_rate": 5e-2, "min_lr": 5e-3, "weight_decay": 6e-3},
    {"optimizer_variant": "adafactor", "learning_rate": 5e-2, "min_lr": 5e-3, "weight_decay": 0.0},
    *_runs("adamsnsm", [1e-2, 2e-2, 5e-2, 1e-1], scale_decay=True),
    *_runs("muon", [2e-3, 5e-3, 1e-2, 2e-2]),
    *_runs("lion", [3e-4, 5e-4, 1e-3, 2e-3], scale_decay=True),
    *_runs("adam_mini", [2e-3, 5e-3, 1e-2, 2e-2]),
    *_runs("came", [2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2]),
    *_runs("sm3", [1e-2, 3e-2, 1e-1, 3e-1]),
    *_runs("galore", [5e-3, 1e-2, 2e-2, 5e-2, 1e-1], scale_decay=True),
    *_runs("apollo", [2e-3, 5e-3, 1e-2, 2e-2, 5e-2]),
    *_runs("adamw8bit", [2e-3, 3e-3, 5e-3, 8e-3, 1.2e-2]),
]
del _runs

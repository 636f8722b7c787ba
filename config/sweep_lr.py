# The learning-rate sweep behind the optimizer table of docs/optimizers.md: the seed CPU config, every variant,
# same seed. min_lr is learning_rate / 10 in every run (set per run below).
#   leangpt sweep config/sweep_lr.py      (36 runs x 1.5-2 min on 2 cores)
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

variants = [
    {"optimizer_variant": 'adam', "learning_rate": 0.001, "min_lr": 0.0001},
    {"optimizer_variant": 'adam', "learning_rate": 0.002, "min_lr": 0.0002},
    {"optimizer_variant": 'adam', "learning_rate": 0.003, "min_lr": 0.0003},
    {"optimizer_variant": 'adamw', "learning_rate": 0.001, "min_lr": 0.0001},
    {"optimizer_variant": 'adamw', "learning_rate": 0.002, "min_lr": 0.0002},
    {"optimizer_variant": 'adamw', "learning_rate": 0.003, "min_lr": 0.0003},
    {"optimizer_variant": 'adamw', "learning_rate": 0.005, "min_lr": 0.0005},
    {"optimizer_variant": 'adamw', "learning_rate": 0.008, "min_lr": 0.0008},
    {"optimizer_variant": 'adamsn', "learning_rate": 0.05, "weight_decay": 0.006, "min_lr": 0.005},
    {"optimizer_variant": 'adamsn', "learning_rate": 0.05, "adamsn_dense_lr_ratio": 0.1, "weight_decay": 0.01, "min_lr": 0.005},
    {"optimizer_variant": 'adamsn', "learning_rate": 0.03, "weight_decay": 0.01, "min_lr": 0.003},
    {"optimizer_variant": 'adamsn', "learning_rate": 0.1, "adamsn_dense_lr_ratio": 0.05, "min_lr": 0.01},
    {"optimizer_variant": 'adamsn', "learning_rate": 0.03, "adamsn_dense_lr_ratio": 0.1, "min_lr": 0.003},
    {"optimizer_variant": 'adamsn', "learning_rate": 0.05, "adamsn_dense_lr_ratio": 0.1, "min_lr": 0.005},
    {"optimizer_variant": 'adamsn', "learning_rate": 0.01, "min_lr": 0.001},
    {"optimizer_variant": 'adamsn', "learning_rate": 0.02, "min_lr": 0.002},
    {"optimizer_variant": 'adamsn', "learning_rate": 0.03, "min_lr": 0.003},
    {"optimizer_variant": 'adamsn', "learning_rate": 0.05, "min_lr": 0.005},
    {"optimizer_variant": 'adamsn', "learning_rate": 0.1, "min_lr": 0.01},
    {"optimizer_variant": 'adafactor', "learning_rate": 0.01, "weight_decay": 0.0, "min_lr": 0.001},
    {"optimizer_variant": 'adafactor', "learning_rate": 0.02, "weight_decay": 0.0, "min_lr": 0.002},
    {"optimizer_variant": 'adafactor', "learning_rate": 0.03, "weight_decay": 0.0, "min_lr": 0.003},
    {"optimizer_variant": 'adafactor', "learning_rate": 0.1, "weight_decay": 0.0, "min_lr": 0.01},
    {"optimizer_variant": 'adafactor', "learning_rate": 0.3, "weight_decay": 0.0, "min_lr": 0.03},
    {"optimizer_variant": 'adafactor', "learning_rate": 0.01, "min_lr": 0.001},
    {"optimizer_variant": 'adafactor', "learning_rate": 0.03, "min_lr": 0.003},
    {"optimizer_variant": 'adafactor', "learning_rate": 0.1, "min_lr": 0.01},
    {"optimizer_variant": 'adafactor', "adafactor_scale_parameter": False, "learning_rate": 0.001, "min_lr": 0.0001},
    {"optimizer_variant": 'adafactor', "adafactor_scale_parameter": False, "learning_rate": 0.002, "min_lr": 0.0002},
    {"optimizer_variant": 'adafactor', "adafactor_scale_parameter": False, "learning_rate": 0.003, "min_lr": 0.0003},
    {"optimizer_variant": 'adafactor', "adafactor_scale_parameter": False, "learning_rate": 0.005, "min_lr": 0.0005},
    {"optimizer_variant": 'adafactor', "adafactor_scale_parameter": False, "adafactor_beta1": 0.9, "learning_rate": 0.003, "min_lr": 0.0003},
    {"optimizer_variant": 'adafactor', "adafactor_scale_parameter": False, "adafactor_beta1": 0.9, "learning_rate": 0.006, "min_lr": 0.0006},
    {"optimizer_variant": 'adafactor', "adafactor_scale_parameter": False, "adafactor_beta1": 0.9, "learning_rate": 0.01, "min_lr": 0.001},
]
variants += [
    {"optimizer_variant": 'adafactor', "learning_rate": 0.05, "weight_decay": 0.0, "min_lr": 0.005},
    {"optimizer_variant": 'adamsn', "learning_rate": 0.07, "weight_decay": 0.004, "min_lr": 0.007},
]

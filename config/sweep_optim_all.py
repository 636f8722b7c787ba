# Every optimizer variant at its tuned setting on the seed CPU config (MHA), evaluated on 200
# batches (val-loss noise: standard deviation 0.004, bench/eval_noise.py). The settings are those of
# config/tuned_<variant>.py, found by config/sweep_lr_field.py (docs/optimizers.md).
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

# each variant's settings are its config/tuned_<variant>.py (the registry names them all)
from leangpt.config import read_config_file as _read
from leangpt.variants import VARIANTS as _VARIANTS

variants = [_read(_v.tuned_config) for _v in _VARIANTS.values()]

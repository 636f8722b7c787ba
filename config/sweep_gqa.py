# The course's GQA experiment: the seed CPU run with n_headgroup 1 (MHA), 2 (GQA) and 4 (MQA).
#   leangpt sweep config/sweep_gqa.py            (writes sweeps/sweep_gqa/report.md)
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

grid = {"n_headgroup": [1, 2, 4]}

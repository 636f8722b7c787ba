# Does the memory stack keep the plain trainer's quality? The seed CPU run (MHA, AdamW at its tuned
# learning rate, fp32) plain and with the chunked loss and the optimizer step in the backward pass
# (grad_clip 1.0, clipped exactly), over 3 seeds, each final val loss over 200 batches.
#   leangpt sweep config/sweep_stack_quality.py            (writes sweeps/sweep_stack_quality/report.md)
#   python bench/fast_quality.py sweeps/sweep_stack_quality   (mean of the seeds per mode)
out_dir = "out-sweep"  # each run gets SWEEP_DIR/runs/NAME instead
dataset = "shakespeare_char"
device = "cpu"
dtype = "float32"
compile = False
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
    {"chunked_loss": False, "optimizer_in_backward": False},
    {"chunked_loss": True, "optimizer_in_backward": True},
]
grid = {"seed": [1337, 1338, 1339]}

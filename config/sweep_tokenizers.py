# The seed CPU model on characters and on a byte-level BPE of the same text (2048 ids), at the
# same tokens per step: loss curves and samples of both (docs/datasets.md).
#   leangpt prepare --input=input.txt --name=shakespeare_bpe --tokenizer=bpe --vocab_size=2048
#   leangpt sweep config/sweep_tokenizers.py     (writes sweeps/sweep_tokenizers/report.md)
out_dir = "out-sweep"  # each run gets SWEEP_DIR/runs/NAME instead
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

grid = {"dataset": ["shakespeare_char", "shakespeare_bpe"]}

# GPT-2 124M (12x768, block 1024) on a BPE-tokenized corpus: nanoGPT's train_gpt2.py settings
# (about 0.5M tokens per step over 8 GPUs: 12 x 1024 x 40). docs/datasets.md has the recipe:
#   leangpt prepare --input=path/to/corpus --name=corpus_bpe --tokenizer=bpe --vocab_size=32768
#   torchrun --standalone --nproc_per_node=8 train.py config/train_gpt2_bpe.py --dataset=corpus_bpe
out_dir = "out-gpt2-bpe"
dataset = "corpus_bpe"

batch_size = 12
block_size = 1024
gradient_accumulation_steps = 5 * 8  # divided among the torchrun processes

n_layer = 12
n_head = 12
n_embd = 768
dropout = 0.0

learning_rate = 6e-4
max_iters = 600000
lr_decay_iters = 600000
min_lr = 6e-5
weight_decay = 1e-1
beta1 = 0.9
beta2 = 0.95
warmup_iters = 2000

eval_interval = 1000
eval_iters = 200
log_interval = 10

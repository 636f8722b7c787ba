# AdamSN with subspace momentum (rank 32 = n_embd/4, SVD refresh every 200 steps).
# Its best learning rate on the seed CPU config, of 0.01, 0.02, 0.05, 0.1 (config/sweep_lr_field.py): best val loss 1.7832, +0.0023 against AdamW's best;
# optimizer state 0.189x AdamW's (measured). docs/optimizers.md.
optimizer_variant = 'adamsnsm'
learning_rate = 0.05
min_lr = 0.005
weight_decay = 0.01
adamsnsm_rank = 32

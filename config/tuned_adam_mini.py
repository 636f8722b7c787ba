# Adam-mini: one second moment per q/k/v head and per tensor; full Adam on the embedding.
# Its best learning rate on the seed CPU config, of 0.002, 0.005, 0.01, 0.02 (config/sweep_lr_field.py): best val loss 1.8298, +0.0488 against AdamW's best;
# optimizer state 0.505x AdamW's (measured). docs/optimizers.md.
optimizer_variant = 'adam_mini'
learning_rate = 0.005
min_lr = 0.0005

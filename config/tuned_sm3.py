# SM3: row/column cover-set accumulators (no weight decay in the method).
# Its best learning rate on the seed CPU config, of 0.01, 0.03, 0.1, 0.3 (config/sweep_lr_field.py): best val loss 2.0520, +0.2711 against AdamW's best;
# optimizer state 0.506x AdamW's (measured). docs/optimizers.md.
optimizer_variant = 'sm3'
learning_rate = 0.03
min_lr = 0.003

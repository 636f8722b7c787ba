# GaLore: Adam in a rank-32 gradient subspace of each hidden weight (scale 0.25, refresh every 200).
# Its best learning rate on the seed CPU config, of 0.005, 0.01, 0.02, 0.05, 0.1 (config/sweep_lr_field.py): best val loss 1.8044, +0.0234 against AdamW's best;
# optimizer state 0.307x AdamW's (measured). docs/optimizers.md.
optimizer_variant = 'galore'
learning_rate = 0.05
min_lr = 0.005
weight_decay = 0.01
galore_rank = 32

# APOLLO: channel-wise scaling from rank-32 random-projection Adam.
# Its best learning rate on the seed CPU config, of 0.002, 0.005, 0.01, 0.02, 0.05 (config/sweep_lr_field.py): best val loss 1.8378, +0.0569 against AdamW's best;
# optimizer state 0.307x AdamW's (measured). docs/optimizers.md.
optimizer_variant = 'apollo'
learning_rate = 0.02
min_lr = 0.002
apollo_rank = 32

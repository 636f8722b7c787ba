# torchao's AdamW8bit: both moments in 8 bits with a scale per 256 values.
# Its best learning rate on the seed CPU config, of 0.002, 0.003, 0.005, 0.008, 0.012 (config/sweep_lr_field.py): best val loss 1.7670, -0.0140 against AdamW's best;
# optimizer state 0.268x AdamW's (measured). docs/optimizers.md.
optimizer_variant = 'adamw8bit'
learning_rate = 0.008
min_lr = 0.0008

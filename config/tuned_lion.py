# Lion (sign of interpolated momentum): a smaller lr than AdamW's, decay scaled up to keep lr * wd.
# Its best learning rate on the seed CPU config, of 0.0003, 0.0005, 0.001, 0.002 (config/sweep_lr_field.py): best val loss 1.8305, +0.0496 against AdamW's best;
# optimizer state 0.500x AdamW's (measured). docs/optimizers.md.
optimizer_variant = 'lion'
learning_rate = 0.0005
min_lr = 5e-05
weight_decay = 1.0

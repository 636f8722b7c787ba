# CAME: factored second moment with a confidence term (betas beta1, beta2, came_beta3).
# Its best learning rate on the seed CPU config, of 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01 (config/sweep_lr_field.py): best val loss 1.8268, +0.0459 against AdamW's best;
# optimizer state 0.511x AdamW's (measured). docs/optimizers.md.
optimizer_variant = 'came'
learning_rate = 0.0005
min_lr = 5e-05

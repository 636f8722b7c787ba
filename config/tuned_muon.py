# Muon on the hidden Linear weights, AdamW on the rest; match_rms_adamw lets one lr serve both.
# Its best learning rate on the seed CPU config, of 0.002, 0.005, 0.01, 0.02 (config/sweep_lr_field.py): best val loss 1.6043, -0.1766 against AdamW's best;
# optimizer state 0.511x AdamW's (measured). docs/optimizers.md.
optimizer_variant = 'muon'
learning_rate = 0.005
min_lr = 0.0005

# AdamSN at its best learning rate on the seed CPU config (config/sweep_lr.py).
# Decoupled weight decay shrinks weights by lr * weight_decay per step: at ten times AdamW's lr,
# nanoGPT's weight_decay=0.1 decays ten times harder, so it is scaled down with the lr.
optimizer_variant = "adamsn"
learning_rate = 5e-2
min_lr = 5e-3
weight_decay = 6e-3

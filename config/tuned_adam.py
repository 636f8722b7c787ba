# Adam (no weight decay) at its best learning rate on the seed CPU config (config/sweep_lr.py).
optimizer_variant = "adam"
learning_rate = 3e-3
min_lr = 3e-4

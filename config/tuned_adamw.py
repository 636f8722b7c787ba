# AdamW at its best learning rate on the seed CPU config (config/sweep_lr.py; docs/optimizers.md).
#   python train.py config/train_shakespeare_char.py config/tuned_adamw.py --device=cpu --compile=False ...
optimizer_variant = "adamw"
learning_rate = 5e-3
min_lr = 5e-4

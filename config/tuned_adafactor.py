# Adafactor at its best learning rate and mode on the seed CPU config (config/sweep_lr.py): factored
# second moments only (no first moment: state 0.006x AdamW's), steps scaled by RMS(param), the
# trainer's warmup/cosine schedule setting rho_t. Its decoupled weight decay (lr * weight_decay per
# step, with lr ~10x AdamW's) hurt at every lr tried, so it is off.
optimizer_variant = "adafactor"
learning_rate = 5e-2
min_lr = 5e-3
weight_decay = 0.0
adafactor_scale_parameter = True
adafactor_relative_step = False
adafactor_beta1 = None

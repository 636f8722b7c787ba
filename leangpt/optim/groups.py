"""Parameter groups: nanoGPT's weight-decay split, and the subsets some optimizers treat apart."""

from __future__ import annotations

import torch.nn as nn


def subset_norm_names(model: nn.Module, which: str) -> set[str]:
    """Names of the 2-D parameters that get subset-norm step sizes.

    "linear": the weights of nn.Linear layers, as the authors recommend, but not the tied output
    layer: that tensor is also the token embedding, whose rows are tokens of very different
    frequency, and summing over its smaller dimension would give every token one shared step.
    "all_2d": every 2-D parameter, embeddings included.
    """
    names = {name for name, p in model.named_parameters() if p.dim() == 2}
    if which == "all_2d":
        return names
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    linear = set()
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear) and id(module.weight) not in embeddings:
            linear.add(f"{module_name}.weight" if module_name else "weight")
    return names & linear


def param_groups(model: nn.Module, weight_decay: float, subset_norm: set[str] | None = None,
                 dense_lr_ratio: float = 1.0) -> list[dict]:
    """nanoGPT's grouping (decay on >=2-D tensors only); split further by subset-norm when asked.

    Each group's `lr_scale` multiplies the trainer's scheduled learning rate: with subset norms,
    the parameters that stay plain Adam (embeddings, LayerNorm gains, biases) get `dense_lr_ratio`.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [(n, p) for n, p in named if p.dim() >= 2]
    no_decay = [p for n, p in named if p.dim() < 2]
    if subset_norm is None:
        return [{"params": [p for _, p in decay], "weight_decay": weight_decay},
                {"params": no_decay, "weight_decay": 0.0}]
    dense = {"subset_norm": False, "lr_scale": dense_lr_ratio}
    groups = [{"params": [p for n, p in decay if n in subset_norm], "weight_decay": weight_decay, "subset_norm": True},
              {"params": [p for n, p in decay if n not in subset_norm], "weight_decay": weight_decay, **dense},
              {"params": no_decay, "weight_decay": 0.0, **dense}]
    return [g for g in groups if g["params"]]


def with_keys(groups: list[dict], names: set[str], model: nn.Module, keys: dict) -> list[dict]:
    """`groups` with the parameters named in `names` moved into their own group(s) carrying `keys`."""
    wanted = {id(p) for n, p in model.named_parameters() if n in names}
    out = []
    for group in groups:
        inside = [p for p in group["params"] if id(p) in wanted]
        outside = [p for p in group["params"] if id(p) not in wanted]
        if inside:
            out.append({**group, "params": inside, **keys})
        if outside:
            out.append({**group, "params": outside})
    return out


def hidden_linear_names(model: nn.Module) -> set[str]:
    """The hidden nn.Linear weights: what the low-rank and Muon methods update their own way."""
    return subset_norm_names(model, "linear")

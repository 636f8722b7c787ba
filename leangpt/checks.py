"""One-line checks of a run's settings against what came before it: the learning rate a variant
was tuned at, the checkpoint it resumes, the run whose out_dir it is about to reuse."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from .config import TrainConfig
from .model import ARCHITECTURE_KEYS
from .variants import VARIANTS


def tuned_lr_hint(config: TrainConfig) -> str:
    """One line when a variant runs far (over 5x) from the learning rate it was tuned at, else ''."""
    variant = config.optimizer_variant
    if variant == "adafactor" and (config.adafactor_relative_step or not config.adafactor_scale_parameter):
        return ""  # another mode, with another lr scale: no tuned value to point at
    tuned = VARIANTS[variant].tuned_lr
    if tuned is None:
        return ""
    ratio = config.learning_rate / tuned
    if 0.2 <= ratio <= 5:
        return ""
    return (f"note: optimizer_variant={variant} at learning_rate={config.learning_rate:g} is {max(ratio, 1 / ratio):.0f}x "
            f"{'below' if ratio < 1 else 'above'} its tuned {tuned:g} on the course's seed model; add "
            f"{VARIANTS[variant].tuned_config} after the config file for the tuned settings")


# the low-rank variants' rank key; each projects a hidden weight's gradient (rows n_embd or wider)
LOW_RANK_KEYS = {"galore": "galore_rank", "apollo": "apollo_rank"}


def low_rank_note(config: TrainConfig) -> str:
    """One line when a low-rank variant's rank is not below the model's width: the projection then
    keeps at least a full-size moment per weight and saves nothing over AdamW, else ''."""
    key = LOW_RANK_KEYS.get(config.optimizer_variant)
    if key is None or getattr(config, key) < config.n_embd:
        return ""
    return (f"note: {key}={getattr(config, key)} is not below n_embd={config.n_embd}: the low-rank projection saves "
            f"nothing here, and its state can exceed AdamW's (the 'optimizer state:' line after the first step "
            f"says by how much); pass --{key}=N with N < {config.n_embd}, or add "
            f"{VARIANTS[config.optimizer_variant].tuned_config} after the config file")


def setting_notes(config: TrainConfig) -> list[str]:
    """The notes a run's settings earn before it starts (the trainer, the sweep and the report print them)."""
    return [note for note in (tuned_lr_hint(config), low_rank_note(config)) if note]


def setting_notes_of(saved: dict) -> list[str]:
    """The same notes for a run's config.json (a dict of TrainConfig's keys)."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    try:
        return setting_notes(TrainConfig(**{k: v for k, v in saved.items() if k in fields}))
    except (TypeError, ValueError, KeyError, AttributeError):
        return []


SHAPE_KEYS = ("batch_size", "gradient_accumulation_steps")  # with block_size: tokens per iteration
IGNORED_ON_RESUME = {"init_from", "out_dir", *ARCHITECTURE_KEYS}  # the architecture is the checkpoint's


def resume_changes(saved: dict, config: TrainConfig) -> list[str]:
    """Lines naming what the command line changed against the checkpoint's config."""
    changed = [(k, saved[k], getattr(config, k)) for k in saved
               if k not in IGNORED_ON_RESUME and hasattr(config, k) and saved[k] != getattr(config, k)]
    lines = []
    shape = [c for c in changed if c[0] in SHAPE_KEYS]
    other = [c for c in changed if c[0] not in SHAPE_KEYS]
    if other:
        lines.append("resuming with settings changed from the checkpoint's: "
                     + ", ".join(f"{k} {old!r} -> {new!r}" for k, old, new in other))
    if shape:
        tokens = lambda c: c.get("batch_size", 0) * c.get("gradient_accumulation_steps", 0) * c.get("block_size", 0)
        before, after = tokens(saved), tokens(dataclasses.asdict(config))
        lines.append("warning: " + ", ".join(f"{k} {old!r} -> {new!r}" for k, old, new in shape)
                     + f": {before:,} -> {after:,} tokens per iteration (repeat the original values to keep them)")
    return lines


def other_configuration(path: Path, config: TrainConfig) -> str:
    """The settings of the run whose checkpoint is at `path` that differ in model or optimizer (read
    from its config.json: loading the checkpoint itself could take gigabytes)."""
    try:
        saved = json.loads((path.parent / "config.json").read_text()) if path.is_file() else {}
    except (OSError, ValueError):  # unreadable: scratch replaces it anyway, nothing to compare
        return ""
    if not isinstance(saved, dict) or not saved:
        return ""
    keys = (*(k for k in ARCHITECTURE_KEYS if k != "vocab_size"), "optimizer_variant")
    if all(saved.get(k) == getattr(config, k) for k in keys):
        return ""
    return ", ".join(f"{k}={saved.get(k)}" for k in keys if saved.get(k) != getattr(config, k))

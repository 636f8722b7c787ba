"""Typed configuration: nanoGPT's `CONFIG.py --key=value` command line, parsed into dataclasses.

A config file is plain Python assignments, executed into a fresh dict (never into globals).
Every key, from the file or the command line, must be a field of the target dataclass; values
are converted by the field's annotation, and `validate()` checks what single fields cannot.
Every mistake raises `ConfigError` with one line that names the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, TypeVar, Union


from . import variants
from .errors import ConfigError
from .variants import OptimizerVariant


@dataclass
class _SharedTrainKeys:
    """Everything `train.py` reads but the per-optimizer keys, which come from the registry
    (variants.py). Defaults follow nanoGPT's train.py unless noted."""

    # I/O
    out_dir: str = "out"
    eval_interval: int = 2000
    log_interval: int = 1
    eval_iters: int = 200
    eval_only: bool = False
    always_save_checkpoint: bool = True
    init_from: str = "scratch"  # scratch | resume | gpt2* (the local Hugging Face cache) | a GPT-2 directory
    # logging
    wandb_log: bool = False
    wandb_project: str = "owt"
    wandb_run_name: str = "gpt2"
    tensorboard: bool = False
    # data
    dataset: str = "openwebtext"
    data_dir: str = "data"  # leangpt: datasets live in data_dir/dataset/
    gradient_accumulation_steps: int = 40
    batch_size: int = 12
    block_size: int = 1024
    # model
    n_layer: int = 12
    n_head: int = 12
    n_headgroup: int = 1  # query heads per key/value head: 1 = MHA, n_head = MQA
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = False
    attn_impl: Literal["sdpa", "einsum"] = "sdpa"
    gelu: Literal["exact", "tanh"] = "exact"  # leangpt: tanh is GPT-2's own (init_from GPT-2 weights sets it)
    # the memory stack (docs/memory.md): each removes bytes from a training step's peak, none changes its math
    activation_checkpointing: bool = False  # recompute each block in the backward: less memory, ~1/3 more compute
    chunked_loss: bool = False  # output layer + loss a chunk of tokens at a time: the logits never exist whole
    loss_chunk_size: int = 256  # tokens per chunk with chunked_loss
    optimizer_in_backward: bool = False  # update each weight as its gradient completes, then free the gradient
    # optimizer
    optimizer_variant: OptimizerVariant = "adamw"
    learning_rate: float = 6e-4
    max_iters: int = 600000
    weight_decay: float = 1e-1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0  # 0 disables clipping
    # learning-rate schedule
    decay_lr: bool = True
    warmup_iters: int = 2000
    lr_decay_iters: int = 600000
    min_lr: float = 6e-5
    # system
    backend: Literal["auto", "nccl", "gloo"] = "auto"  # leangpt: gloo on CPU, nccl on CUDA
    device: str = "auto"  # leangpt: cuda when available, else cpu
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # auto: bf16/fp16 on CUDA, fp32 on CPU
    compile: bool = True
    seed: int = 1337
    zero: bool = False
    fsdp: bool = False  # leangpt: shard weights, gradients and optimizer state with FSDP2 (under torchrun)
    dist_timeout: float = 300.0  # seconds a rank waits for the others before it gives up (torch's gloo default: 1800)

    def validate(self) -> None:
        _require(self.init_from in ("scratch", "resume", *GPT2_WEIGHTS) or Path(self.init_from).is_dir(), "init_from",
                 self.init_from, "is not scratch, resume, gpt2, gpt2-medium, gpt2-large, gpt2-xl (read from the local "
                 "Hugging Face cache) or a directory of Hugging Face GPT-2 weights")
        _require(self.n_layer >= 1, "n_layer", self.n_layer, "must be >= 1")
        _require(self.n_head >= 1, "n_head", self.n_head, "must be >= 1")
        _require(self.n_embd >= 1, "n_embd", self.n_embd, "must be >= 1")
        _require(self.n_embd % self.n_head == 0, "n_embd", self.n_embd,
                 f"must be divisible by n_head={self.n_head}")
        _require(self.n_headgroup >= 1, "n_headgroup", self.n_headgroup, "must be >= 1")
        _require(self.n_head % self.n_headgroup == 0, "n_headgroup", self.n_headgroup,
                 f"must divide n_head={self.n_head} (heads per key/value group)")
        _require(self.block_size >= 1, "block_size", self.block_size, "must be >= 1")
        _require(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")
        _require(self.gradient_accumulation_steps >= 1, "gradient_accumulation_steps",
                 self.gradient_accumulation_steps, "must be >= 1")
        _require(0.0 <= self.dropout < 1.0, "dropout", self.dropout, "must be in [0, 1)")
        _require(self.max_iters >= 0, "max_iters", self.max_iters, "must be >= 0")
        _require(self.eval_interval >= 1, "eval_interval", self.eval_interval, "must be >= 1")
        _require(self.log_interval >= 1, "log_interval", self.log_interval, "must be >= 1")
        _require(self.eval_iters >= 1, "eval_iters", self.eval_iters, "must be >= 1")
        for key in ("learning_rate", "min_lr"):
            value = getattr(self, key)
            _require(math.isfinite(value) and value >= 0, key, value, "must be a finite number >= 0")
        _require(self.learning_rate > 0, "learning_rate", self.learning_rate, "must be > 0")
        _require(self.min_lr <= self.learning_rate, "min_lr", self.min_lr,
                 f"must be <= learning_rate={self.learning_rate}")
        _require(math.isfinite(self.weight_decay) and self.weight_decay >= 0, "weight_decay", self.weight_decay,
                 "must be a finite number >= 0")
        _require(0.0 <= self.beta1 < 1.0, "beta1", self.beta1, "must be in [0, 1)")
        _require(0.0 <= self.beta2 < 1.0, "beta2", self.beta2, "must be in [0, 1)")
        # eps=inf would pass a >= 0 test and make every update zero: the run would not learn, silently
        _require(math.isfinite(self.eps) and self.eps >= 0, "eps", self.eps, "must be a finite number >= 0")
        _require(self.grad_clip >= 0, "grad_clip", self.grad_clip, "must be >= 0 (0 disables)")
        _require(self.warmup_iters >= 0, "warmup_iters", self.warmup_iters, "must be >= 0")
        _require(self.lr_decay_iters >= 0, "lr_decay_iters", self.lr_decay_iters, "must be >= 0")
        _require(bool(self.dataset) and "/" not in self.dataset and self.dataset not in (".", ".."),
                 "dataset", self.dataset, "must be a plain directory name under data_dir")
        _require(bool(self.out_dir), "out_dir", self.out_dir, "must not be empty")
        # below a second gloo cannot even connect; past a week torch's timedelta arithmetic overflows
        _require(1.0 <= self.dist_timeout <= MAX_DIST_TIMEOUT, "dist_timeout", self.dist_timeout,
                 f"must be from 1 to {MAX_DIST_TIMEOUT:g} seconds (a week)")
        _require(0 <= self.seed < 2**63 - 3, "seed", self.seed, "must be in [0, 2**63 - 3)")  # + rank, + 2
        _validate_device(self.device)
        _require(self.loss_chunk_size >= 1, "loss_chunk_size", self.loss_chunk_size, "must be >= 1")
        if self.optimizer_in_backward:
            self._validate_in_backward()
        if self.fsdp:
            self._validate_fsdp()
        for key in variants.KEYS:  # the optimizers' own keys, checked by the rule each declares
            problem = key.check(getattr(self, key.name))
            if problem:
                raise ConfigError(f"{key.name}={getattr(self, key.name)!r} {problem}")

    def _validate_fsdp(self) -> None:
        """What FSDP2's shards cannot run exactly: each is one line naming the key."""
        variant = variants.VARIANTS[self.optimizer_variant]
        if variant.fsdp_refusal:
            raise ConfigError(f"fsdp=True cannot run optimizer_variant={self.optimizer_variant} exactly: "
                              f"{variant.fsdp_refusal}; pick a variant that runs on shards (docs/distributed.md) "
                              "or pass --fsdp=False")
        if self.zero:
            raise ConfigError("fsdp=True already shards the optimizer state (and the weights and gradients): "
                              "pass --zero=False")
        if self.optimizer_in_backward:
            raise ConfigError("fsdp=True cannot step each weight inside the backward pass (its gradient shard "
                              "arrives after the pass's reduce-scatter): pass --optimizer_in_backward=False")
        if self.dtype == "float16":
            raise ConfigError("fsdp=True cannot run float16's loss scaling: pass --dtype=bfloat16 or --dtype=float32")

    def _validate_in_backward(self) -> None:
        """What a step inside the backward pass cannot do: each is one line naming what to pass."""
        variant = variants.VARIANTS[self.optimizer_variant]
        if not variant.in_backward:
            raise ConfigError(f"optimizer_in_backward=True cannot run optimizer_variant={self.optimizer_variant}: "
                              f"{variant.in_backward_refusal}; pass --optimizer_in_backward=False")
        if self.gradient_accumulation_steps != 1:
            raise ConfigError(f"optimizer_in_backward=True updates each weight in the backward pass of one micro-batch: "
                              f"pass --gradient_accumulation_steps=1 (a batch_size {self.gradient_accumulation_steps}x "
                              f"larger trains on the same tokens per iteration), or --optimizer_in_backward=False")
        if self.zero:
            raise ConfigError("optimizer_in_backward=True cannot shard the optimizer state (zero=True): pass "
                              "--zero=False or --optimizer_in_backward=False")
        if self.dtype == "float16":
            raise ConfigError("optimizer_in_backward=True cannot run float16's loss scaling, which checks every "
                              "gradient for inf before any update: pass --dtype=bfloat16 or --dtype=float32")


TrainConfig = dataclasses.make_dataclass(
    "TrainConfig", [(k.name, k.type, dataclasses.field(default=k.default)) for k in variants.KEYS],
    bases=(_SharedTrainKeys,), namespace={"__doc__": "Everything `train.py` reads: the shared keys, then "
                                           "each optimizer variant's own (variants.py)."})
TrainConfig.__module__ = __name__


@dataclass
class SampleConfig:
    """Everything `sample.py` reads."""

    out_dir: str = "out"
    ckpt: str = "ckpt.pt"  # file inside out_dir; best.pt holds the best-val weights
    start: str = "\n"  # prompt text, or FILE:path to read it from a file
    num_samples: int = 10
    max_new_tokens: int = 500
    temperature: float = 0.8
    top_k: Optional[int] = 200
    seed: int = 1337
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    compile: bool = False  # torch.compile the model (slow to start; on CPU it did not pay: docs/benchmarks.md)
    kv_cache: bool = True
    cache_overflow: Literal["exact", "half"] = "exact"
    data_dir: str = "data"

    def validate(self) -> None:
        _require(self.num_samples >= 1, "num_samples", self.num_samples, "must be >= 1")
        _require(self.max_new_tokens >= 0, "max_new_tokens", self.max_new_tokens, "must be >= 0")
        _require(math.isfinite(self.temperature) and self.temperature >= 1e-3, "temperature",
                 self.temperature, "must be a finite number >= 0.001 (for greedy decoding use --top_k=1)")
        _require(0 <= self.seed < 2**63, "seed", self.seed, "must be in [0, 2**63)")
        if self.top_k is not None:
            _require(self.top_k >= 1, "top_k", self.top_k, "must be None or >= 1")
        _validate_device(self.device)


@dataclass
class ConvertConfig:
    """`leangpt convert`: MHA checkpoint -> GQA checkpoint by mean-pooling K/V heads per group."""

    in_dir: str = ""
    out_dir: str = ""
    n_headgroup: int = 2

    def validate(self) -> None:
        _require(bool(self.in_dir), "in_dir", self.in_dir, "is required")
        _require(bool(self.out_dir), "out_dir", self.out_dir, "is required")
        _require(Path(self.in_dir).resolve() != Path(self.out_dir).resolve(), "out_dir",
                 self.out_dir, "must differ from in_dir")
        _require(self.n_headgroup >= 1, "n_headgroup", self.n_headgroup, "must be >= 1")


@dataclass
class PrepareConfig:
    """`leangpt prepare`: a corpus -> data_dir/name/{train.bin,val.bin,meta.pkl} (prepare.py)."""

    input: str = ""  # a text file, a directory of them, a .jsonl or a save_to_disk dataset; empty: download tinyshakespeare
    name: str = "shakespeare_char"
    data_dir: str = "data"
    val_fraction: float = 0.1
    tokenizer: Literal["char", "gpt2", "bpe"] = "char"  # tokenizer.py
    vocab_size: int = 0  # bpe only: the vocabulary to train (0: 4096)
    text_key: str = "text"  # the field of a .jsonl line or the column of a dataset that holds the text

    def validate(self) -> None:
        _require(bool(self.name) and "/" not in self.name and self.name not in (".", ".."),
                 "name", self.name, "must be a plain directory name")
        _require(0.0 < self.val_fraction < 1.0, "val_fraction", self.val_fraction, "must be in (0, 1)")
        if self.tokenizer != "bpe":
            _require(self.vocab_size == 0, "vocab_size", self.vocab_size,
                     f"is set by the {self.tokenizer} tokenizer itself; only --tokenizer=bpe trains a vocabulary of a given size")
        else:
            _require(self.vocab_size == 0 or 258 <= self.vocab_size < 2**32, "vocab_size", self.vocab_size,
                     "must be at least 258 (the 256 byte tokens, <|endoftext|> and a merge) and below 2**32")
        _require(bool(self.text_key), "text_key", self.text_key, "is required")


def _require(ok: bool, key: str, value: Any, rule: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} {rule}")


def _validate_device(device: str) -> None:
    base = device.split(":", 1)[0]
    if base not in ("auto", "cpu", "cuda", "mps"):
        raise ConfigError(f"device={device!r} is not one of auto, cpu, cuda, cuda:N, mps")


# ----------------------------------------------------------------------------- parsing

C = TypeVar("C")


def parse_config(cls: type[C], argv: list[str], preset: dict[str, Any] | None = None) -> C:
    """Build `cls` from nanoGPT-style arguments: config files (no `--`) then `--key=value`.

    `preset` holds values already read (from a file the caller parsed itself); argv overrides them.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, value in (preset or {}).items():
        check_known(key, fields, source="config file")
        values[key] = coerce(key, value, hints[key])
    for i, arg in enumerate(argv):
        if not arg.startswith("--"):
            for key, value in read_config_file(arg).items():
                check_known(key, fields, source=arg)
                values[key] = coerce(key, value, hints[key])
            continue
        body = arg[2:]
        if "=" not in body:
            following = argv[i + 1] if i + 1 < len(argv) else None
            raise ConfigError(f"argument {arg!r} must look like --key=value{missing_equals_hint(body, following, fields)}")
        key, text = body.split("=", 1)
        check_known(key, fields, source="command line")
        values[key] = coerce(key, text, hints[key], from_text=True)
    config = cls(**values)
    config.validate()
    return config


def config_from_dict(cls: type[C], values: dict[str, Any]) -> C:
    """Rebuild a config saved by `dataclasses.asdict`, ignoring keys this version doesn't know."""
    known = {f.name for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    config = cls(**{k: coerce(k, v, hints[k]) for k, v in values.items() if k in known})
    config.validate()
    return config


MAX_DIST_TIMEOUT = 7 * 24 * 3600.0

# why a value nanoGPT takes is not one of leangpt's
GPT2_WEIGHTS = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")


def read_config_file(path: str) -> dict[str, Any]:
    """The assignments of a config file (names starting with _ and imported modules left out); a
    `.json` file is read as data (a sweep's run_config.json), never run."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file {path!r} not found (arguments without -- are config files)")
    if file.suffix == ".json":
        try:
            values = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(f"config file {path!r} is not readable JSON: {exc}") from None
        if not isinstance(values, dict):
            raise ConfigError(f"config file {path!r} must hold a JSON object {{key: value}}")
        return values
    namespace: dict[str, Any] = {}
    try:
        exec(compile(file.read_text(), str(file), "exec"), namespace)
    except SystemExit as exc:  # a config file that exits must not end the run as if it had succeeded
        raise ConfigError(f"config file {path!r} called sys.exit({exc.code!r}); a config file only sets keys") from None
    except Exception as exc:  # a user's file: report where it broke, in one line
        raise ConfigError(f"config file {path!r} failed to run: {type(exc).__name__}: {exc}") from None
    return {k: v for k, v in namespace.items()
            if not k.startswith("_") and not isinstance(v, (types.ModuleType, types.FunctionType, type))}


def missing_equals_hint(key: str, following: str | None, fields) -> str:
    """What a `--key` without `=` most likely meant, given the argument after it: `--out_dir X`
    (a space for the `=`) or `--out dir=X` (a space for the `_`, as a handout's PDF may render it)."""
    if following is not None and not following.startswith("--"):
        if "=" in following:
            joined = f"{key}_{following.split('=', 1)[0]}"
            if joined in fields:
                return f"; did you mean --{joined}={following.split('=', 1)[1]}? (a space where '_' belongs)"
        if key in fields:
            return f"; did you mean --{key}={following}?"
    close = [key] if key in fields else difflib.get_close_matches(key, list(fields), n=1)
    return f"; for example --{close[0]}=VALUE" if close else ""


def check_known(key: str, fields, source: str) -> None:
    if key in fields:
        return
    close = difflib.get_close_matches(key, list(fields), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"unknown config key {key!r} (from {source}){hint}")


_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def coerce(key: str, value: Any, annotation: Any, from_text: bool = False) -> Any:
    """Convert `value` to `annotation`; text from the command line is parsed, not evaluated."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if value is None or (from_text and str(value) in ("None", "none", "null")):
            return None
        return coerce(key, value, inner[0], from_text)
    if origin is Literal:
        if value in args:
            return value
        # `adamSN` is `adamsn`: every allowed value is lower case, so case never tells two apart
        same = [a for a in args if isinstance(a, str) and isinstance(value, str) and a.lower() == value.strip().lower()]
        if len(same) == 1:
            return same[0]
        allowed = ", ".join(str(a) for a in args)
        close = difflib.get_close_matches(str(value).lower(), [str(a) for a in args], n=1) if isinstance(value, str) else []
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"{key}={value!r} is not allowed; {hint}choose one of: {allowed}")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigError(f"{key}={value!r} is not a bool; use True/False (or true/false, 1/0)")
    if annotation is int:
        if (isinstance(value, bool) or not isinstance(value, (int, float, str))
                or isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{key}={value!r} is not an integer")
        try:
            return int(value) if not isinstance(value, str) else int(value.strip().replace("_", ""))
        except OverflowError:
            raise ConfigError(f"{key}={value!r} is not an integer") from None
        except ValueError:
            # 1e3 on the command line is a common way to write an integer
            try:
                as_float = float(value)
            except ValueError:
                raise ConfigError(f"{key}={value!r} is not an integer") from None
            if not as_float.is_integer():
                raise ConfigError(f"{key}={value!r} is not an integer") from None
            return int(as_float)
    if annotation is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} is not a number")
        try:
            result = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}={value!r} is not a number") from None
        if math.isnan(result):
            raise ConfigError(f"{key}={value!r} is not a number")
        return result
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}={value!r} must be a string")
        return value
    raise ConfigError(f"{key}: unsupported annotation {annotation!r}")  # a bug in leangpt, not user input


def parse_grid_args(argv: list[str], cls: type = TrainConfig) -> tuple[TrainConfig, list[dict], Path]:
    """A grid of configs from nanoGPT-style arguments: the base config, one dict of overrides per
    combination (variants x the crossed grid; one empty dict without a grid), and the sweep
    directory. `--grid=KEY=V1,V2` and a config file's `grid = {...}` / `variants = [...]` add to it."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    base_args, file_values, grid, variants, sweep_dir, files = [], {}, {}, [{}], None, []
    given_on_command_line: dict[str, str] = {}
    for arg in argv:
        if not arg.startswith("--"):
            values = read_config_file(arg)
            if not isinstance(values.get("grid", {}), dict):
                raise ConfigError(f"grid in {arg} must be a dict {{key: [values]}}, not {type(values['grid']).__name__}")
            if not isinstance(values.get("variants", []), list) or not all(
                    isinstance(v, dict) for v in values.get("variants", [])):
                raise ConfigError(f"variants in {arg} must be a list of dicts {{key: value}}")
            grid.update({k: list(v) if isinstance(v, (list, tuple)) else v for k, v in values.pop("grid", {}).items()})
            variants = values.pop("variants", None) or variants
            sweep_dir = values.pop("sweep_dir", sweep_dir)
            files.append(arg)
            file_values.update(values)
        elif arg == "--grid" or arg.startswith("--grid="):
            body = arg[len("--grid="):]
            if "=" not in body:
                raise ConfigError(f"{arg!r} must look like --grid=KEY=V1,V2,...")
            key, text = body.split("=", 1)
            if key in given_on_command_line:
                raise ConfigError(f"--grid={key} is given twice; give all its values in one: "
                                  f"--grid={key}={given_on_command_line[key]},{text}")
            given_on_command_line[key] = text
            values = [v for v in text.split(",")]
            if not text or any(v.strip() == "" for v in values):
                raise ConfigError(f"--grid={key}: give one or more comma-separated values, none empty")
            grid[key] = [coerce(key, v.strip(), hints[key], from_text=True) if key in hints else v for v in values]
        elif arg.startswith("--sweep_dir="):
            sweep_dir = arg.split("=", 1)[1]
        else:
            base_args.append(arg)
    # a --key=value typed on the command line is the last word, as in train.py: it replaces what
    # the config file's variants set (a tiny smoke run of a preset of sizes); swept too, it is ambiguous
    typed = {a[2:].split("=", 1)[0] for a in base_args if a.startswith("--") and "=" in a}
    for key in sorted(typed & set(grid)):
        raise ConfigError(f"{key} is both swept (grid) and set on the command line; give it in one place")
    variants = [{k: v for k, v in variant.items() if k not in typed} for variant in variants]
    variants = [v for i, v in enumerate(variants) if v not in variants[:i]]  # variants the command line made alike
    for key, values in grid.items():
        check_known(key, fields, source="grid")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid key {key!r} needs a non-empty list of values")
        grid[key] = [coerce(key, v, hints[key]) for v in values]
    for variant in variants:
        for key, value in variant.items():
            check_known(key, fields, source="variants")
            variant[key] = coerce(key, value, hints[key])
    base = parse_config(cls, base_args, preset=file_values)
    if sweep_dir is None:
        stem = Path(files[-1]).stem if files else "sweep"
        sweep_dir = f"sweeps/{stem}"
    keys = list(grid)
    combos = [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]
    runs = [{**variant, **combo} for variant in variants for combo in combos]
    return base, runs, Path(sweep_dir)


@dataclass
class ExportConfig:
    """Everything `leangpt export` reads: a sharded checkpoint (fsdp=True) -> one ckpt.pt."""

    out_dir: str = "out"
    ckpt: str = "ckpt"  # NAME: reads out_dir/NAME.dcp, writes out_dir/NAME.pt (best: the best-val weights)

    def validate(self) -> None:
        _require(bool(self.out_dir), "out_dir", self.out_dir, "must not be empty")
        _require(self.ckpt in ("ckpt", "best"), "ckpt", self.ckpt, "must be ckpt or best")

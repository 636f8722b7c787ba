"""GPT-2 weights from disk: `--init_from=PATH` (a Hugging Face GPT-2 directory) or
`--init_from=gpt2|gpt2-medium|gpt2-large|gpt2-xl` (found in the local Hugging Face cache).

Nothing is downloaded. The directory holds config.json and model.safetensors or
pytorch_model.bin, as `GPT2LMHeadModel.save_pretrained` or the Hub writes them. Hugging Face's
GPT-2 stores its linear layers as Conv1D, weight [in, out]: they are transposed into nn.Linear's
[out, in], as nanoGPT does. The model is MHA; `leangpt convert` makes it GQA afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch

from .config import GPT2_WEIGHTS
from .errors import LeanGPTError
from .model import GPTConfig

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
GELUS = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu": "exact"}


class PretrainedError(LeanGPTError):
    """GPT-2 weights that are absent or not a GPT-2."""


def is_pretrained(init_from: str) -> bool:
    return init_from not in ("scratch", "resume")


def hub_cache() -> Path:
    """Where huggingface_hub keeps downloads: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"


def find_weights(init_from: str) -> Path:
    """The directory of config.json and the weights that `init_from` names."""
    if init_from in GPT2_WEIGHTS:
        name = init_from
        for repo in (f"openai-community/{name}", name):
            folder = hub_cache() / ("models--" + repo.replace("/", "--"))
            snapshot = _snapshot(folder)
            if snapshot is not None:
                return snapshot
        raise PretrainedError(
            f"init_from={init_from!r}: the weights are not in the local Hugging Face cache ({hub_cache()}); "
            f"where there is network, run `huggingface-cli download openai-community/{name}` (or "
            f"GPT2LMHeadModel.from_pretrained) and copy the cache here, or pass --init_from=DIRECTORY")
    path = Path(init_from)
    if not path.is_dir():
        raise PretrainedError(f"init_from={init_from!r} is not scratch, resume, gpt2, gpt2-medium, gpt2-large, "
                              "gpt2-xl or a directory of Hugging Face GPT-2 weights")
    return path


def _snapshot(folder: Path) -> Path | None:
    ref = folder / "refs" / "main"
    if ref.is_file():
        snapshot = folder / "snapshots" / ref.read_text().strip()
        if (snapshot / "config.json").is_file():
            return snapshot
    snapshots = sorted((p for p in (folder / "snapshots").glob("*") if (p / "config.json").is_file()),
                       key=lambda p: p.stat().st_mtime) if (folder / "snapshots").is_dir() else []
    return snapshots[-1] if snapshots else None


def read_config(directory: Path) -> GPTConfig:
    """The GPTConfig of a Hugging Face GPT-2 config.json; one error line for what leangpt cannot run,
    naming the file and the key."""
    path = directory / "config.json"
    try:
        hf = json.loads(path.read_text())
    except FileNotFoundError:
        raise PretrainedError(f"{directory} has no config.json: it is not a Hugging Face model directory") from None
    except (OSError, ValueError) as exc:
        raise PretrainedError(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(hf, dict) or hf.get("model_type") != "gpt2":
        raise PretrainedError(f"{directory}: model_type {hf.get('model_type') if isinstance(hf, dict) else None!r} "
                              "is not gpt2; leangpt loads GPT-2 weights only")
    activation = hf.get("activation_function", "gelu_new")
    if not isinstance(activation, str) or activation not in GELUS:
        raise PretrainedError(f"{path}: activation_function {activation!r} is not one of {', '.join(GELUS)}")
    epsilon = _number(hf, "layer_norm_epsilon", path, default=1e-5)
    if abs(epsilon - 1e-5) > 1e-12:
        raise PretrainedError(f"{path}: layer_norm_epsilon {epsilon} is not GPT-2's 1e-5, which leangpt's "
                              "LayerNorm uses")
    if hf.get("scale_attn_by_inverse_layer_idx") or hf.get("scale_attn_weights") is False:
        raise PretrainedError(f"{directory}: attention scaled otherwise than by 1/sqrt(head_dim) is not supported")
    n_embd, n_head = _positive_int(hf, "n_embd", path), _positive_int(hf, "n_head", path)
    if n_embd % n_head:
        raise PretrainedError(f"{path}: n_head={n_head} does not divide n_embd={n_embd}")
    block_key = "n_positions" if "n_positions" in hf or "n_ctx" not in hf else "n_ctx"
    return GPTConfig(n_layer=_positive_int(hf, "n_layer", path), n_head=n_head, n_embd=n_embd,
                     block_size=_positive_int(hf, block_key, path, default=1024),
                     vocab_size=_positive_int(hf, "vocab_size", path), bias=True, gelu=GELUS[activation])


def _positive_int(hf: dict, key: str, path: Path, default: int | None = None) -> int:
    """config.json's `key`, which must be an integer >= 1 (JSON's 2.0 counts, "two" and true do not)."""
    if key not in hf and default is None:
        raise PretrainedError(f"{path} lacks {key!r}")
    value = hf.get(key, default)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PretrainedError(f"{path}: {key}={json.dumps(value)} must be an integer >= 1")
    return value


def _number(hf: dict, key: str, path: Path, default: float) -> float:
    value = hf.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PretrainedError(f"{path}: {key}={json.dumps(value)} must be a number")
    return float(value)


def read_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    """The Hugging Face state dict, from model.safetensors or pytorch_model.bin."""
    if (directory / "model.safetensors").is_file():
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise PretrainedError("reading model.safetensors needs safetensors (pip install safetensors)") from None
        try:
            return load_file(str(directory / "model.safetensors"))
        except Exception as exc:
            raise PretrainedError(f"{directory / 'model.safetensors'} does not load: {exc}") from None
    if (directory / "pytorch_model.bin").is_file():
        try:
            return torch.load(directory / "pytorch_model.bin", map_location="cpu", weights_only=True)
        except Exception as exc:
            raise PretrainedError(f"{directory / 'pytorch_model.bin'} does not load: {exc}") from None
    raise PretrainedError(f"{directory} has neither model.safetensors nor pytorch_model.bin")


def to_leangpt(hf_state: dict[str, torch.Tensor], config: GPTConfig) -> dict[str, torch.Tensor]:
    """Hugging Face GPT-2 keys and Conv1D layouts -> leangpt's (nanoGPT's) state dict."""
    out = {}
    for key, value in hf_state.items():
        name = key[len("transformer."):] if key.startswith("transformer.") else key
        if name.endswith((".attn.bias", ".attn.masked_bias")) or name == "lm_head.weight":
            continue  # the causal-mask buffers of older versions; the head is tied to wte
        if name.endswith(CONV1D):
            value = value.t()
        out[f"transformer.{name}"] = value.contiguous()
    out["lm_head.weight"] = out.get("transformer.wte.weight")
    return out


def load_gpt2(init_from: str, block_size: int, dropout: float):
    """(model, the directory it came from): GPT-2 weights in a leangpt GPT, the position table cut
    to `block_size` when that is smaller (nanoGPT's crop_block_size)."""
    from .model import GPT
    directory = find_weights(init_from)
    config = dataclasses.replace(read_config(directory), dropout=dropout)
    if block_size > config.block_size:
        raise PretrainedError(f"block_size={block_size} is longer than the {config.block_size} positions "
                              f"the weights in {directory} know; use --block_size={config.block_size} or less")
    state = to_leangpt(read_state_dict(directory), config)
    if block_size < config.block_size and "transformer.wpe.weight" in state:  # nanoGPT's crop_block_size
        state["transformer.wpe.weight"] = state["transformer.wpe.weight"][:block_size].contiguous()
        config = dataclasses.replace(config, block_size=block_size)
    model = GPT(config)
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise PretrainedError(f"{directory}: the weights do not match config.json (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]})")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise PretrainedError(f"{directory}: the weights do not match config.json: {' '.join(str(exc).split())[:300]}") from None
    return model, directory

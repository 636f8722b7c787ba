"""Sample text from a trained checkpoint (nanoGPT's sample.py, with a KV cache by default)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from . import checkpoint
from .config import SampleConfig
from .errors import LeanGPTError
from .data import DataError, load_meta
from .tokenizer import NANOGPT_GPT2_META, GPT2Tokenizer, tokenizer_from_meta
from .device import check_compile, resolve


def tokenizer_for(ckpt: dict, data_dir: str):
    """The checkpoint's own tokenizer, else the one of the dataset it was trained on (no meta.pkl:
    nanoGPT's GPT-2 data)."""
    if "meta" in ckpt:  # checkpoint.load checked it (check_meta)
        return tokenizer_from_meta(ckpt["meta"])
    dataset = (ckpt.get("config") or {}).get("dataset")
    if not dataset:
        raise DataError("the checkpoint names no dataset, so its vocabulary is unknown")
    if not isinstance(dataset, str) or "/" in dataset or "\\" in dataset or dataset in (".", ".."):
        raise DataError(f"the checkpoint's dataset {dataset!r} is not a plain name under data_dir; refused")
    meta_path = Path(data_dir) / dataset / "meta.pkl"
    return tokenizer_from_meta(load_meta(meta_path) if meta_path.is_file() else NANOGPT_GPT2_META)


GPT2_NEWLINE = 198  # GPT-2's id of "\n", the default prompt: it needs no encoding file


def encode_prompt(tokenizer, prompt: str, info) -> tuple[list[int], bool]:
    """The prompt's ids, and whether the samples can be decoded. Without GPT-2's encoding file
    (offline, never cached) the default prompt still works and the samples are printed as ids."""
    try:
        return tokenizer.encode(prompt), True
    except DataError as exc:
        if not isinstance(tokenizer, GPT2Tokenizer) or prompt != "\n":
            raise
        info(f"{exc}; the samples are printed as token ids")
        return [GPT2_NEWLINE], False


def unfinished_run_note(ckpt: dict) -> str:
    """One line when the checkpoint is of a run stopped before its max_iters (Ctrl-C, a time limit)."""
    iter_num, max_iters = ckpt.get("iter_num"), (ckpt.get("config") or {}).get("max_iters")
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (iter_num, max_iters)) or iter_num >= max_iters:
        return ""
    return (f"this checkpoint holds iteration {iter_num} of {max_iters} (an unfinished run; continue it with the "
            "command that trained it plus --init_from=resume)")


def read_prompt(start: str) -> str:
    if start.startswith("FILE:"):
        path = start[len("FILE:"):]
        try:
            return Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise LeanGPTError(f"cannot read the prompt file {path!r}: {exc}") from None
    return start


def sample(config: SampleConfig, out=print, info=lambda line: print(line, file=sys.stderr)) -> list[str]:
    config.validate()
    runtime = resolve(config.device, config.dtype)
    ckpt_path = Path(config.out_dir) / config.ckpt
    ckpt = checkpoint.load(ckpt_path)
    model = checkpoint.load_model(ckpt, ckpt_path, dropout=0.0)
    tokenizer = tokenizer_for(ckpt, config.data_dir)
    unfinished = unfinished_run_note(ckpt)
    if unfinished:
        info(unfinished)
    del ckpt
    if tokenizer.vocab_size < model.config.vocab_size:  # an id the model emits would not decode
        raise DataError(f"the model has {model.config.vocab_size} token ids but its vocabulary (meta.pkl) only "
                        f"{tokenizer.vocab_size}: give the data_dir of the dataset it was trained on")
    model.eval().to(runtime.device)
    if config.compile:
        check_compile(runtime.device_type)
        # every cached decode step has one shape (the cache is preallocated, its tail masked), so
        # they share one compiled graph. Compiling costs more than it saves on a small CPU model
        # (docs/benchmarks.md); launch-bound GPU decoding is where it can pay
        model.compile()
        info("compile=True: compiling the model; the first tokens wait for it")

    prompt = read_prompt(config.start)
    if not prompt:
        raise LeanGPTError("the prompt is empty; give at least one character with --start")
    prompt_ids, decodable = encode_prompt(tokenizer, prompt, info)
    ids = torch.tensor([prompt_ids], dtype=torch.long, device=runtime.device)
    with runtime.autocast():
        per_token = model.config.kv_cache_bytes_per_token(torch.empty((), dtype=model.compute_dtype()).element_size())
    cached_tokens = min(model.config.block_size, ids.size(1) + config.max_new_tokens)
    info(f"parameters: {model.num_params():,}; KV cache: {per_token:,} bytes/token, "
         f"{per_token * cached_tokens:,} bytes for {cached_tokens} tokens"
         + ("" if config.kv_cache else " (cache off)"))

    torch.manual_seed(config.seed)
    # all samples in one batch: one forward pass per token instead of num_samples of them. Each
    # draw takes one random number per row, so with several samples the rows are not the samples
    # nanoGPT's one-after-another loop would draw from the same seed; a single sample is the same
    with torch.no_grad(), runtime.autocast():
        t0 = time.perf_counter()
        y = model.generate(ids.expand(config.num_samples, -1), config.max_new_tokens,
                           temperature=config.temperature, top_k=config.top_k,
                           kv_cache=config.kv_cache, cache_overflow=config.cache_overflow)
        elapsed = time.perf_counter() - t0
    generated = config.num_samples * config.max_new_tokens
    samples = [tokenizer.decode(row.tolist()) if decodable else " ".join(map(str, row.tolist())) for row in y]
    for text in samples:
        out(text)
        out("---------------")
    if elapsed > 0:
        info(f"generated {generated} tokens at {generated / elapsed:.1f} tokens/s")
    return samples

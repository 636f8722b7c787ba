"""Prepared datasets: their meta.pkl checked, their token files fingerprinted, and random batches
drawn from a memmap. Preparing them is prepare.py; the tokenizers are tokenizer.py."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import torch

from .tokenizer import NANOGPT_GPT2_META, CharTokenizer, DataError, check_tokenizer_meta

__all__ = ["CharTokenizer", "DataError", "BatchSampler", "dataset_paths", "load_dataset_meta", "load_meta",
           "check_meta", "check_dataset", "prepare_dataset", "read_text", "fingerprint"]

SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"


class _PlainDataUnpickler(pickle.Unpickler):
    """Reads only what nanoGPT's meta.pkl holds (dicts, strings, ints): pickle encodes those
    without naming any class, so refusing every class refuses code and nothing else."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"it names {module}.{name}; a meta.pkl holds plain data only")


def load_meta(meta_path: str | Path) -> dict:
    try:
        with open(meta_path, "rb") as f:
            meta = _PlainDataUnpickler(f).load()
    except FileNotFoundError:
        raise DataError(f"{meta_path} not found; prepare the dataset first (leangpt prepare)") from None
    except Exception as exc:
        raise DataError(f"{meta_path} is not a plain-data meta.pkl, refused: {exc}") from None
    return check_meta(meta, str(meta_path))


MAX_CHAR_VOCAB = 2**16  # a character vocabulary's ids are stored as uint16 unless its meta.pkl says uint32


def check_meta(meta, source: str) -> dict:
    """A meta.pkl as nanoGPT writes it for characters (vocab_size an int, stoi {char: id} and itos
    {id: char} with an entry for every id below vocab_size, so every id a model emits decodes), or
    as leangpt writes it for any tokenizer (tokenizer.check_tokenizer_meta)."""
    if not isinstance(meta, dict) or "vocab_size" not in meta:
        raise DataError(f"{source} lacks vocab_size")
    check_tokenizer_meta(meta, source)
    if meta.get("tokenizer", "char") != "char":
        return meta
    if not {"stoi", "itos"} <= set(meta):
        raise DataError(f"{source} lacks vocab_size/stoi/itos")
    size, stoi, itos = meta["vocab_size"], meta["stoi"], meta["itos"]
    if meta.get("dtype", "uint16") == "uint16" and size > MAX_CHAR_VOCAB:
        raise DataError(f"{source}: vocab_size {size!r} is not an integer from 1 to {MAX_CHAR_VOCAB} (ids are uint16)")
    if not isinstance(stoi, dict) or not isinstance(itos, dict):
        raise DataError(f"{source}: stoi and itos must be dicts, not {type(stoi).__name__} and {type(itos).__name__}")
    if not all(type(i) is int and isinstance(c, str) for i, c in itos.items()) or any(i not in itos for i in range(size)):
        raise DataError(f"{source}: itos must map every id 0..{size - 1} to a string")
    if not all(isinstance(c, str) and type(i) is int and 0 <= i < size for c, i in stoi.items()):
        raise DataError(f"{source}: stoi must map strings to ids below vocab_size {size}")
    return meta


FINGERPRINT_BYTES = 1 << 16


def fingerprint(payload: bytes) -> str:
    """Size, head and tail of a token file: what tells one prepared file from another without
    reading gigabytes."""
    return _digest(len(payload), payload[:FINGERPRINT_BYTES], payload[-FINGERPRINT_BYTES:])


def _file_fingerprint(path: Path) -> str:
    """`fingerprint` of a file on disk, reading only its head and tail."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(FINGERPRINT_BYTES)
        f.seek(max(0, size - FINGERPRINT_BYTES))
        return _digest(size, head, f.read())


def _digest(size: int, head: bytes, tail: bytes) -> str:
    h = hashlib.sha256(str(size).encode())
    h.update(head)
    h.update(tail)
    return h.hexdigest()


def check_token_file(path: Path, dtype: str = "uint16") -> int:
    """Its size in bytes, which must be a whole number of ids of `dtype`."""
    size, itemsize = Path(path).stat().st_size, np.dtype(dtype).itemsize
    if size % itemsize:
        raise DataError(f"{path} has {size:,} bytes, not a whole number of {dtype} ids (cut short, or written "
                        "with another dtype than its meta.pkl says); prepare the dataset again")
    return size


def check_dataset(paths: dict[str, Path], meta: dict) -> None:
    """train.bin and val.bin are the files this meta.pkl was written with (a meta.pkl from before
    leangpt recorded them, or nanoGPT's, is taken as it is)."""
    for split in ("train", "val"):
        check_token_file(paths[split], meta.get("dtype", "uint16"))
    recorded = meta.get("leangpt_files")
    if not isinstance(recorded, dict):
        return
    for split in ("train", "val"):
        path = paths[split]
        if recorded.get(path.name) != _file_fingerprint(path):
            raise DataError(f"{path} is not the file {paths['meta'].name} was written with (a prepare stopped "
                            "halfway, or files copied from another dataset): prepare the dataset again")


def read_text(input_path: str | None) -> str:
    """The whole corpus of one text file (else tinyshakespeare downloaded): for small inputs and tests."""
    from .prepare import corpus_from_input
    corpus = corpus_from_input(input_path)
    return corpus.text if corpus.path is None else "".join(corpus.blocks())


def prepare_dataset(text: str, out_dir: str | Path, val_fraction: float = 0.1, tokenizer: str = "char",
                    vocab_size: int = 0) -> dict:
    """Write train.bin / val.bin (the first 1-val_fraction of the characters / the rest) and meta.pkl
    for a text in memory (prepare.prepare_corpus streams a file or a directory)."""
    from .prepare import Corpus, prepare_corpus, quiet
    return prepare_corpus(Corpus(None, text=text), out_dir, tokenizer, vocab_size, val_fraction, progress=quiet)


class BatchSampler:
    """Random (x, y) windows from a token file (uint16 or uint32), drawn with an explicit generator.

    Each draw picks `batch_size * world_size` offsets from one generator that every rank seeds
    alike; rank r keeps its slice. So the ranks' batches together are exactly the batch one
    process with `batch_size * world_size` would draw, and the state to save is one generator.
    """

    def __init__(self, bin_path: str | Path, block_size: int, batch_size: int, seed: int,
                 rank: int = 0, world_size: int = 1, vocab_size: int | None = None, dtype: str = "uint16"):
        self.bin_path = Path(bin_path)
        if not self.bin_path.is_file():
            raise DataError(f"{self.bin_path} not found")
        self.dtype = dtype
        self.n_tokens = check_token_file(self.bin_path, dtype) // np.dtype(dtype).itemsize
        if self.n_tokens <= block_size:
            raise DataError(f"{self.bin_path} has {self.n_tokens} tokens, not more than block_size={block_size}; "
                            "use a smaller block_size or more text")
        self.block_size, self.batch_size = block_size, batch_size
        self.rank, self.world_size = rank, world_size
        self.vocab_size = vocab_size  # ids at or above it mean a file prepared with another meta.pkl
        self.generator = torch.Generator().manual_seed(seed)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        # a fresh memmap per batch avoids the memory growth nanoGPT works around the same way
        data = np.memmap(self.bin_path, dtype=self.dtype, mode="r")
        ix = torch.randint(self.n_tokens - self.block_size, (self.batch_size * self.world_size,),
                           generator=self.generator)
        ix = ix[self.rank * self.batch_size:(self.rank + 1) * self.batch_size].tolist()
        windows = np.stack([data[i:i + self.block_size + 1] for i in ix]).astype(np.int64)
        if self.vocab_size is not None and windows.max() >= self.vocab_size:
            raise DataError(f"{self.bin_path} holds token id {windows.max()}, not below the vocabulary size "
                            f"{self.vocab_size} of its meta.pkl: prepare the dataset again")
        return torch.from_numpy(windows[:, :-1].copy()), torch.from_numpy(windows[:, 1:].copy())

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def dataset_paths(data_dir: str | Path, dataset: str) -> dict[str, Path]:
    """The prepared files of a dataset; a clear error saying how to prepare it when absent. Without
    meta.pkl, train.bin and val.bin are nanoGPT's GPT-2 data (`load_dataset_meta`)."""
    root = Path(data_dir) / dataset
    paths = {"train": root / "train.bin", "val": root / "val.bin", "meta": root / "meta.pkl"}
    missing = [p.name for p in (paths["train"], paths["val"]) if not p.is_file()]
    if missing:
        hint = ("python data/shakespeare_char/prepare.py" if dataset == "shakespeare_char"
                else f"leangpt prepare --input=YOUR.txt --name={dataset} --data_dir={data_dir}")
        raise DataError(f"dataset {dataset!r} is not prepared in {root} (missing {', '.join(missing)}); run: {hint}")
    return paths


def load_dataset_meta(paths: dict[str, Path]) -> dict:
    """The dataset's meta.pkl, checked against its token files; without one, nanoGPT's rule for its
    own GPT-2 datasets: GPT-2 ids in uint16, a model vocabulary of 50304."""
    if not paths["meta"].is_file():
        meta = dict(NANOGPT_GPT2_META)
    else:
        meta = load_meta(paths["meta"])
    check_dataset(paths, meta)
    return meta

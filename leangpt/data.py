"""Character-level datasets: text -> uint16 token files, and random batches drawn from a memmap."""

from __future__ import annotations

import hashlib
import os
import pickle
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import LeanGPTError
from .fileio import atomic_write_set, directory_lock

SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"


class DataError(LeanGPTError):
    """A missing, mismatched or unreadable dataset."""


@dataclass(frozen=True)
class CharTokenizer:
    """Maps each distinct character of the corpus to an id (sorted order, as nanoGPT does)."""

    stoi: dict[str, int]
    itos: dict[int, str]

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        chars = sorted(set(text))
        return cls({ch: i for i, ch in enumerate(chars)}, {i: ch for i, ch in enumerate(chars)})

    @classmethod
    def from_meta(cls, meta_path: str | Path) -> "CharTokenizer":
        meta = load_meta(meta_path)
        return cls(meta["stoi"], meta["itos"])

    @property
    def vocab_size(self) -> int:
        return len(self.stoi)

    def encode(self, text: str) -> list[int]:
        unknown = sorted({ch for ch in text if ch not in self.stoi})
        if unknown:
            raise DataError(f"the prompt has characters not in the vocabulary: {''.join(unknown)!r}")
        return [self.stoi[ch] for ch in text]

    def decode(self, ids) -> str:
        return "".join(self.itos[int(i)] for i in ids)


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


MAX_VOCAB = 2**16  # ids are stored as uint16


def check_meta(meta, source: str) -> dict:
    """A vocabulary as nanoGPT's meta.pkl holds it: vocab_size an int, stoi {char: id} and itos
    {id: char} with an entry for every id below vocab_size, so every id a model emits decodes."""
    if not isinstance(meta, dict) or not {"vocab_size", "stoi", "itos"} <= set(meta):
        raise DataError(f"{source} lacks vocab_size/stoi/itos")
    size, stoi, itos = meta["vocab_size"], meta["stoi"], meta["itos"]
    if type(size) is not int or not 1 <= size <= MAX_VOCAB:
        raise DataError(f"{source}: vocab_size {size!r} is not an integer from 1 to {MAX_VOCAB} (ids are uint16)")
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


def check_token_file(path: Path) -> int:
    """Its size in bytes, which must be a whole number of uint16 ids."""
    size = Path(path).stat().st_size
    if size % 2:
        raise DataError(f"{path} has an odd number of bytes ({size:,}), so it is not a whole file of "
                        "uint16 ids (cut short?); prepare the dataset again")
    return size


def check_dataset(paths: dict[str, Path], meta: dict) -> None:
    """train.bin and val.bin are the files this meta.pkl was written with (a meta.pkl from before
    leangpt recorded them, or nanoGPT's, is taken as it is)."""
    for split in ("train", "val"):
        check_token_file(paths[split])
    recorded = meta.get("leangpt_files")
    if not isinstance(recorded, dict):
        return
    for split in ("train", "val"):
        path = paths[split]
        if recorded.get(path.name) != _file_fingerprint(path):
            raise DataError(f"{path} is not the file {paths['meta'].name} was written with (a prepare stopped "
                            "halfway, or files copied from another dataset): prepare the dataset again")


def read_text(input_path: str | None) -> str:
    """The corpus: the given file, else tinyshakespeare downloaded from the usual URL."""
    if input_path:
        try:
            return Path(input_path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError(f"input file {input_path!r} not found") from None
        except UnicodeDecodeError as exc:
            raise DataError(f"input file {input_path!r} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        with urllib.request.urlopen(SHAKESPEARE_URL, timeout=30) as response:
            return response.read().decode("utf-8")
    except Exception as exc:
        raise DataError(f"could not download tinyshakespeare ({exc}); pass a local copy with --input=FILE") from None


def prepare_dataset(text: str, out_dir: str | Path, val_fraction: float = 0.1) -> dict:
    """Write train.bin / val.bin (uint16 ids; first 1-val_fraction / the rest) and meta.pkl."""
    if len(text) < 2:
        raise DataError("the input text is empty or a single character; nothing to train on")
    tokenizer = CharTokenizer.from_text(text)
    if tokenizer.vocab_size > 65536:  # ids 0..65535
        raise DataError(f"{tokenizer.vocab_size} distinct characters do not fit uint16 token ids")
    split = int(len(text) * (1 - val_fraction))
    ids = np.array(tokenizer.encode(text), dtype=np.uint16)
    out = Path(out_dir)
    bins = {"train.bin": ids[:split].tobytes(), "val.bin": ids[split:].tobytes()}
    meta = {"vocab_size": tokenizer.vocab_size, "stoi": tokenizer.stoi, "itos": tokenizer.itos,
            "leangpt_files": {name: fingerprint(payload) for name, payload in bins.items()}}
    # all three are written before any replaces its old version, meta.pkl last: a failed write
    # leaves the old set, and a kill between the renames a set that check_dataset refuses
    with directory_lock(out, key="dataset directory"):  # also removes the temporaries of a killed prepare
        atomic_write_set({**{out / name: payload for name, payload in bins.items()}, out / "meta.pkl": pickle.dumps(meta)})
    return {"vocab_size": tokenizer.vocab_size, "train_tokens": split, "val_tokens": len(ids) - split}


class BatchSampler:
    """Random (x, y) windows from a uint16 token file, drawn with an explicit generator.

    Each draw picks `batch_size * world_size` offsets from one generator that every rank seeds
    alike; rank r keeps its slice. So the ranks' batches together are exactly the batch one
    process with `batch_size * world_size` would draw, and the state to save is one generator.
    """

    def __init__(self, bin_path: str | Path, block_size: int, batch_size: int, seed: int,
                 rank: int = 0, world_size: int = 1, vocab_size: int | None = None):
        self.bin_path = Path(bin_path)
        if not self.bin_path.is_file():
            raise DataError(f"{self.bin_path} not found")
        self.n_tokens = check_token_file(self.bin_path) // 2
        if self.n_tokens <= block_size:
            raise DataError(f"{self.bin_path} has {self.n_tokens} tokens, not more than block_size={block_size}; "
                            "use a smaller block_size or more text")
        self.block_size, self.batch_size = block_size, batch_size
        self.rank, self.world_size = rank, world_size
        self.vocab_size = vocab_size  # ids at or above it mean a file prepared with another meta.pkl
        self.generator = torch.Generator().manual_seed(seed)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        # a fresh memmap per batch avoids the memory growth nanoGPT works around the same way
        data = np.memmap(self.bin_path, dtype=np.uint16, mode="r")
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
    """The prepared files of a dataset; a clear error saying how to prepare it when absent."""
    root = Path(data_dir) / dataset
    paths = {"train": root / "train.bin", "val": root / "val.bin", "meta": root / "meta.pkl"}
    missing = [p.name for p in paths.values() if not p.is_file()]
    if missing:
        hint = ("python data/shakespeare_char/prepare.py" if dataset == "shakespeare_char"
                else f"leangpt prepare --input=YOUR.txt --name={dataset} --data_dir={data_dir}")
        raise DataError(f"dataset {dataset!r} is not prepared in {root} (missing {', '.join(missing)}); run: {hint}")
    return paths

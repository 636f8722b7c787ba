"""The tokenizers a dataset is prepared with, and the plain-data meta.pkl that names them.

- `char` (the default): nanoGPT's character vocabulary, `stoi`/`itos` in meta.pkl.
- `gpt2`: GPT-2's BPE through tiktoken, exactly nanoGPT's ids. The model's vocabulary is 50304,
  nanoGPT's rule (GPT-2's 50257 ids rounded up to a multiple of 64, for faster matmuls); the
  padding ids never occur in the data.
- `bpe`: a byte-level BPE trained on the corpus with Hugging Face `tokenizers` (maintained, fast,
  offline); its JSON is kept in meta.pkl, so a checkpoint carries it, and in tokenizer.json.

A dataset directory with train.bin/val.bin and no meta.pkl is nanoGPT's own GPT-2 data
(data/shakespeare, data/openwebtext): `NANOGPT_GPT2_META` describes it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from .errors import LeanGPTError


class DataError(LeanGPTError):
    """A missing, mismatched or unreadable dataset."""


TOKENIZERS = ("char", "gpt2", "bpe")
GPT2_TOKENS = 50257  # ids tiktoken's gpt2 encoding gives, <|endoftext|> (50256) the last
GPT2_MODEL_VOCAB = 50304  # nanoGPT's padded vocabulary for GPT-2 ids
END_OF_TEXT = "<|endoftext|>"
MAX_VOCAB = 2**32
NANOGPT_GPT2_META = {"tokenizer": "gpt2", "vocab_size": GPT2_MODEL_VOCAB, "dtype": "uint16"}


def dtype_for(vocab_size: int) -> str:
    """uint16 as nanoGPT writes, uint32 when the ids need it."""
    return "uint16" if vocab_size <= 2**16 else "uint32"


@dataclass(frozen=True)
class CharTokenizer:
    """Maps each distinct character of the corpus to an id (sorted order, as nanoGPT does)."""

    stoi: dict[str, int]
    itos: dict[int, str]
    kind = "char"
    end_of_text = None  # documents are joined as they are

    @classmethod
    def from_chars(cls, chars: Iterable[str]) -> "CharTokenizer":
        chars = sorted(set(chars))
        return cls({ch: i for i, ch in enumerate(chars)}, {i: ch for i, ch in enumerate(chars)})

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        return cls.from_chars(text)

    @property
    def vocab_size(self) -> int:
        return len(self.stoi)

    def encode(self, text: str) -> list[int]:
        unknown = sorted({ch for ch in text if ch not in self.stoi})
        if unknown:
            raise DataError(f"the prompt has characters not in the vocabulary: {''.join(unknown)!r}")
        return [self.stoi[ch] for ch in text]

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        """Each text's ids, by table lookup (code point -> id)."""
        table = self._table()
        out = []
        for text in texts:
            codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
            if codes.size and (codes.max() >= table.size or (table[codes] < 0).any()):
                raise DataError("the text has characters that are not in the vocabulary")
            out.append(table[codes])
        return out

    def _table(self) -> np.ndarray:
        table = np.full(max(map(ord, self.stoi)) + 1, -1, dtype=np.int64)
        for ch, i in self.stoi.items():
            table[ord(ch)] = i
        return table

    def decode(self, ids) -> str:
        return "".join(self.itos[int(i)] for i in ids)

    def meta(self) -> dict:
        return {"tokenizer": "char", "vocab_size": self.vocab_size, "stoi": self.stoi, "itos": self.itos}


def gpt2_encoding():
    """tiktoken's gpt2 encoding; its file is fetched on first use and cached (TIKTOKEN_CACHE_DIR)."""
    try:
        import tiktoken
    except ImportError:
        raise DataError("the gpt2 tokenizer needs tiktoken (pip install tiktoken); offline, prepare with "
                        "--tokenizer=bpe instead") from None
    try:
        return tiktoken.get_encoding("gpt2")
    except Exception as exc:  # no network and no cache: requests' or tiktoken's own error
        raise DataError(f"GPT-2's BPE encoding could not be loaded by tiktoken ({type(exc).__name__}); it is "
                        "downloaded on first use and cached in TIKTOKEN_CACHE_DIR: run once with network, "
                        "or train a tokenizer offline with --tokenizer=bpe") from None


class GPT2Tokenizer:
    """GPT-2's BPE (tiktoken), loaded on first use so that a run that only trains needs no file."""

    kind = "gpt2"
    vocab_size = GPT2_MODEL_VOCAB

    def __init__(self):
        self._encoding = None

    @property
    def encoding(self):
        if self._encoding is None:
            self._encoding = gpt2_encoding()
        return self._encoding

    @property
    def end_of_text(self) -> int:
        return self.encoding.eot_token

    def encode(self, text: str) -> list[int]:
        # a prompt may name <|endoftext|>, as nanoGPT's sample.py allows
        return self.encoding.encode(text, allowed_special={END_OF_TEXT})

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        # nanoGPT encodes data with encode_ordinary; tiktoken's threads release the GIL
        ids = self.encoding.encode_ordinary_batch(texts, num_threads=os.cpu_count() or 1)
        return [np.asarray(x, dtype=np.int64) for x in ids]

    def decode(self, ids) -> str:
        # the padding ids 50257..50303 are never trained on; a model that draws one shows nothing for it
        return self.encoding.decode([int(i) for i in ids if int(i) < self.encoding.n_vocab])

    def meta(self) -> dict:
        return {"tokenizer": "gpt2", "vocab_size": self.vocab_size}


class BPETokenizer:
    """A byte-level BPE of Hugging Face `tokenizers`, rebuilt from its JSON."""

    kind = "bpe"

    def __init__(self, tokenizer_json: str):
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise DataError("the bpe tokenizer needs Hugging Face tokenizers (pip install tokenizers)") from None
        try:
            self._tokenizer = Tokenizer.from_str(tokenizer_json)
        except Exception as exc:
            raise DataError(f"the bpe tokenizer's JSON does not load: {exc}") from None
        self.tokenizer_json = tokenizer_json
        self.vocab_size = self._tokenizer.get_vocab_size()
        self.end_of_text = self._tokenizer.token_to_id(END_OF_TEXT)

    @classmethod
    def train(cls, texts: Iterator[str], vocab_size: int) -> "BPETokenizer":
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        tokenizer = Tokenizer(models.BPE())
        # GPT-2's pre-tokenizer: bytes, so every text encodes; split on its regex
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[END_OF_TEXT], show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tokenizer.train_from_iterator(texts, trainer=trainer)
        return cls(tokenizer.to_str())

    def encode(self, text: str) -> list[int]:
        return self._tokenizer.encode(text).ids

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=False)  # threads in Rust
        return [np.asarray(e.ids, dtype=np.int64) for e in encodings]

    def decode(self, ids) -> str:
        return self._tokenizer.decode([int(i) for i in ids], skip_special_tokens=False)

    def meta(self) -> dict:
        return {"tokenizer": "bpe", "vocab_size": self.vocab_size, "tokenizer_json": self.tokenizer_json}


def tokenizer_from_meta(meta: dict):
    """The tokenizer a checked meta.pkl (data.check_meta) names."""
    kind = meta.get("tokenizer", "char")
    if kind == "char":
        return CharTokenizer(meta["stoi"], meta["itos"])
    if kind == "gpt2":
        return GPT2Tokenizer()
    return BPETokenizer(meta["tokenizer_json"])


def vocabulary_difference(saved: dict, meta: dict) -> str:
    """Why ids of `saved`'s vocabulary mean other things in `meta`'s ("" when they mean the same)."""
    kind, saved_kind = meta.get("tokenizer", "char"), saved.get("tokenizer", "char")
    if kind != saved_kind:
        return f"it was trained on {saved_kind} tokens, the dataset is tokenized by {kind}"
    if kind == "char":
        differ = sum(saved["stoi"].get(ch) != i for ch, i in meta["stoi"].items())
        return f"{differ} of its {meta['vocab_size']} characters have other ids" if differ else ""
    if kind == "bpe" and saved.get("tokenizer_json") != meta.get("tokenizer_json"):
        return "its bpe tokenizer is another one than the dataset's"
    return ""


def check_tokenizer_meta(meta: dict, source: str) -> None:
    """What a meta.pkl of each tokenizer must hold, beyond data.check_meta's char checks."""
    kind = meta.get("tokenizer", "char")
    if kind not in TOKENIZERS:
        raise DataError(f"{source}: tokenizer {kind!r} is not one of {', '.join(TOKENIZERS)}")
    size = meta.get("vocab_size")
    if type(size) is not int or not 1 <= size <= MAX_VOCAB:
        raise DataError(f"{source}: vocab_size {size!r} is not an integer from 1 to {MAX_VOCAB}")
    dtype = meta.get("dtype", "uint16")
    if dtype not in ("uint16", "uint32"):
        raise DataError(f"{source}: dtype {dtype!r} is not uint16 or uint32")
    if dtype == "uint16" and size > 2**16:
        raise DataError(f"{source}: vocab_size {size} does not fit its uint16 token files")
    if kind == "gpt2" and size < GPT2_TOKENS:
        raise DataError(f"{source}: a gpt2 vocabulary has at least {GPT2_TOKENS} ids, not {size}")
    if kind == "bpe":
        text = meta.get("tokenizer_json")
        if not isinstance(text, str):
            raise DataError(f"{source}: a bpe meta.pkl holds its tokenizer's JSON (tokenizer_json)")
        try:
            json.loads(text)
        except ValueError as exc:
            raise DataError(f"{source}: tokenizer_json is not JSON ({exc})") from None

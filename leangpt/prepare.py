"""`leangpt prepare`: a corpus -> data_dir/name/{train.bin,val.bin,meta.pkl}, nanoGPT's layout.

A corpus is one text file (split like nanoGPT's prepare.py: the first 90% of its characters train,
the rest validate), or documents: a directory of text files, a .jsonl file (one JSON object with
a "text" field per line) or a Hugging Face dataset saved with `save_to_disk` (the first 90% of
the documents train). It is read a block at a time: once to check and count it (and collect
its characters), once more to train a BPE (bpe only), once to encode it. Memory stays bounded by a
block of text and its ids (or the largest document), never the corpus. The ids go to temporary
files; train.bin, val.bin and meta.pkl replace the old set together at the end.
"""

from __future__ import annotations

import json
import pickle
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .data import SHAKESPEARE_URL, FINGERPRINT_BYTES, _digest
from . import fileio
from .fileio import directory_lock
from .tokenizer import TOKENIZERS, BPETokenizer, CharTokenizer, DataError, GPT2Tokenizer, dtype_for

BLOCK_CHARS = 1 << 22  # text read and encoded at a time: ~4 MB, and its ids
PIECE_CHARS = 1 << 16  # a block is encoded in pieces of ~64 KB, in parallel
DEFAULT_BPE_VOCAB = 4096
# a cut between "X\n" and "Y" (X, Y not whitespace) falls between two of GPT-2's pre-tokens, so
# blocks cut there encode to exactly the ids of the whole text (the BPE never merges across them)
_SAFE_CUT = re.compile(r"(?<=\S\n)(?=\S)")


@dataclass
class Corpus:
    """Where the text comes from: `units()` yields (text, is_document_end, split) pieces in order."""

    path: Path | None
    text: str | None = None  # an in-memory corpus (tests, the downloaded tinyshakespeare)
    text_key: str = "text"

    @property
    def kind(self) -> str:
        if self.path is None or self.path.is_file() and self.path.suffix != ".jsonl":
            return "text"
        if self.path.is_file():
            return "jsonl"
        return "hf" if (self.path / "dataset_info.json").is_file() or (self.path / "dataset_dict.json").is_file() \
            else "directory"

    def size_bytes(self) -> int:
        if self.path is None:
            return len(self.text.encode("utf-8"))
        if self.path.is_file():
            return self.path.stat().st_size
        return sum(p.stat().st_size for p in self._files())

    def _files(self) -> list[Path]:
        files = sorted(p for p in self.path.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise DataError(f"input directory {str(self.path)!r} holds no files")
        return files

    def documents(self) -> Iterator[str]:
        """Each document whole (a directory's files, the .jsonl's lines, the dataset's rows)."""
        kind = self.kind
        if kind == "directory":
            for file in self._files():
                yield _read_utf8(file)
        elif kind == "jsonl":
            with open(self.path, encoding="utf-8", errors="strict") as f:
                for number, line in enumerate(_checked_lines(f, self.path), 1):
                    if line.strip():
                        yield _json_text(line, self.path, number, self.text_key)
        else:
            for row in _hf_rows(self.path, self.text_key):
                yield row

    def blocks(self) -> Iterator[str]:
        """A single text in blocks of about BLOCK_CHARS, cut only where the cut changes no id."""
        if self.path is None:
            yield from _cut(iter([self.text[i:i + BLOCK_CHARS] for i in range(0, len(self.text), BLOCK_CHARS)]))
            return
        try:
            with open(self.path, encoding="utf-8") as f:
                yield from _cut(iter(lambda: f.read(BLOCK_CHARS), ""))
        except UnicodeDecodeError as exc:
            raise DataError(f"input file {str(self.path)!r} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _cut(reads: Iterator[str]) -> Iterator[str]:
    carry = ""
    for piece in reads:
        carry += piece
        if len(carry) < BLOCK_CHARS:
            continue
        cut = _last_safe_cut(carry)
        if cut:
            yield carry[:cut]
            carry = carry[cut:]
    if carry:
        yield carry


def _last_safe_cut(text: str) -> int:
    tail = max(0, len(text) - (1 << 16))  # look for a cut near the end first
    for start in (tail, 0):
        found = [m.start() for m in _SAFE_CUT.finditer(text, start)]
        if found:
            return found[-1]
    return 0


def _pieces(text: str, size: int = PIECE_CHARS) -> Iterator[str]:
    """`text` cut at safe points into pieces of about `size` characters (or more, where it has none)."""
    start = 0
    for match in _SAFE_CUT.finditer(text, size):
        if match.start() - start >= size:
            yield text[start:match.start()]
            start = match.start()
    yield text[start:]


def _read_utf8(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{str(file)!r} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"cannot read {str(file)!r}: {exc.strerror or exc}") from None


def _checked_lines(f, path: Path):
    try:
        yield from f
    except UnicodeDecodeError as exc:
        raise DataError(f"{str(path)!r} is not UTF-8 text ({exc.reason})") from None


def _json_text(line: str, path: Path, number: int, key: str) -> str:
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise DataError(f"{path}:{number} is not a JSON object ({exc.msg})") from None
    if not isinstance(value, dict) or not isinstance(value.get(key), str):
        raise DataError(f"{path}:{number} has no string field {key!r} (set the field with --text_key=NAME)")
    return value[key]


def _hf_rows(path: Path, key: str) -> Iterator[str]:
    try:
        import datasets
    except ImportError:
        raise DataError(f"{str(path)!r} is a Hugging Face dataset; reading it needs the datasets library "
                        "(pip install datasets)") from None
    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):  # its splits one after another, train first
        loaded = [loaded[s] for s in sorted(loaded, key=lambda s: (s != "train", s))]
    else:
        loaded = [loaded]
    for part in loaded:
        if key not in part.column_names:
            raise DataError(f"{str(path)!r} has no column {key!r} (columns: {', '.join(part.column_names)}; "
                            "set it with --text_key=NAME)")
        for batch in part.iter(batch_size=1000):
            for text in batch[key]:
                if not isinstance(text, str):
                    raise DataError(f"{str(path)!r}: column {key!r} holds {type(text).__name__}, not text")
                yield text


class Progress:
    """One line on stderr now and then: how much is done, how fast, how long to go."""

    def __init__(self, total: int, label: str, stream=sys.stderr, every: float | None = None):
        self.total, self.label, self.stream = max(total, 1), label, stream
        self.tty = getattr(stream, "isatty", lambda: False)()
        self.every = every if every is not None else (0.5 if self.tty else 10.0)
        self.start = self.last = time.perf_counter()
        self.done = 0

    def advance(self, amount: int) -> None:
        self.done += amount
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            self._print(end="\r" if self.tty else "\n")

    def finish(self) -> None:
        self.done = self.total
        self._print(end="\n")

    def _print(self, end: str) -> None:
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed / 1e6 if elapsed > 0 else 0.0
        left = (self.total - self.done) / (rate * 1e6) if rate > 0 else 0.0
        print(f"prepare: {self.label} {self.done / 1e6:,.1f} of {self.total / 1e6:,.1f} MB "
              f"({100 * self.done / self.total:.0f}%), {rate:.1f} MB/s, {left:.0f}s left", end=end,
              file=self.stream, flush=True)


class _TokenFile:
    """Writes ids to a temporary file, keeping what `data.fingerprint` needs (size, head, tail)."""

    def __init__(self, handle, dtype: str):
        self.handle, self.dtype = handle, np.dtype(dtype)
        self.size, self.head, self.tail = 0, b"", b""

    def write(self, ids: np.ndarray) -> None:
        payload = ids.astype(self.dtype).tobytes()
        self.handle.write(payload)
        self.size += len(payload)
        if len(self.head) < FINGERPRINT_BYTES:
            self.head = (self.head + payload)[:FINGERPRINT_BYTES]
        self.tail = (self.tail + payload)[-FINGERPRINT_BYTES:]

    def fingerprint(self) -> str:
        return _digest(self.size, self.head, self.tail)


def prepare_corpus(corpus: Corpus, out_dir: str | Path, tokenizer: str = "char", vocab_size: int = 0,
                   val_fraction: float = 0.1, progress: Callable[[int, str], Progress] | None = None) -> dict:
    """Write train.bin / val.bin / meta.pkl for `corpus`; returns the counts it printed."""
    if tokenizer not in TOKENIZERS:
        raise DataError(f"tokenizer {tokenizer!r} is not one of {', '.join(TOKENIZERS)}")
    if corpus.path is not None and corpus.path.is_dir():
        source, target = corpus.path.resolve(), Path(out_dir).resolve()
        if target == source or source in target.parents:
            raise DataError(f"the dataset directory {out_dir} is inside the input directory {corpus.path}: "
                            "its train.bin and val.bin would be read as corpus next time; choose another "
                            "--data_dir or --name")
    progress = progress or (lambda total, label: Progress(total, label))
    documents = corpus.kind != "text"
    total_bytes = corpus.size_bytes()

    # pass 1: check every unit reads, count, and find the train/val boundary (and the characters)
    chars: set[str] = set()
    count = 0  # characters of a single text, documents of a corpus of documents
    counting = progress(total_bytes, "reading")
    for unit in (corpus.documents() if documents else corpus.blocks()):
        count += 1 if documents else len(unit)
        if tokenizer == "char":
            chars.update(unit)
        counting.advance(len(unit))
    counting.finish()
    boundary = int(count * (1 - val_fraction))
    if documents and count < 2:
        raise DataError(f"the corpus has {count} document(s); a train and a val split need at least 2")
    if not documents and count < 2:
        raise DataError("the input text is empty or a single character; nothing to train on")
    if documents:
        boundary = min(max(boundary, 1), count - 1)

    def split_units() -> Iterator[tuple[str, str, bool]]:
        """(split, text, ends a document) in order, the text cut at the train/val boundary."""
        if documents:
            for i, doc in enumerate(corpus.documents()):
                yield ("train" if i < boundary else "val"), doc, True
            return
        seen = 0
        for block in corpus.blocks():
            if seen < boundary < seen + len(block):  # nanoGPT encodes the two splits apart
                parts = [("train", block[:boundary - seen]), ("val", block[boundary - seen:])]
            else:
                parts = [("train" if seen < boundary else "val", block)]
            for split, part in parts:
                for piece in _pieces(part):  # pieces a batch encodes on several threads
                    yield split, piece, False
            seen += len(block)

    if tokenizer == "char":
        encoder = CharTokenizer.from_chars(chars)
    elif tokenizer == "gpt2":
        encoder = GPT2Tokenizer()
        encoder.encoding  # fails here, in one line, before anything is written
    else:
        size = vocab_size or DEFAULT_BPE_VOCAB
        encoder = BPETokenizer.train((text for split, text, _ in split_units() if split == "train"), size)
    dtype = dtype_for(encoder.vocab_size)
    end_of_text = encoder.end_of_text

    out = Path(out_dir)
    counts = {"train": 0, "val": 0}
    characters = {"train": 0, "val": 0}  # so that losses per token of two tokenizers compare per character
    files: dict[str, _TokenFile] = {}

    def encode_into(handles: dict) -> None:
        """One pass over the corpus, each piece's ids to its split's file, a batch at a time."""
        files.update({split: _TokenFile(handle, dtype) for split, handle in handles.items()})
        encoding = progress(total_bytes, "encoding")
        batch, ends, size, current = [], [], 0, "train"

        def flush() -> None:
            if not batch:
                return
            pieces = []
            for ids, ends_document in zip(encoder.encode_batch(batch), ends):
                pieces.append(ids)
                if end_of_text is not None and ends_document:  # nanoGPT's openwebtext: eot after each document
                    pieces.append(np.array([end_of_text], dtype=np.int64))
            ids = np.concatenate(pieces)
            files[current].write(ids)
            counts[current] += int(ids.size)
            characters[current] += sum(map(len, batch))
            encoding.advance(sum(map(len, batch)))
            batch.clear()
            ends.clear()

        for split, text, ends_document in split_units():
            if split != current or size >= BLOCK_CHARS:
                flush()
                current, size = split, 0
            batch.append(text)
            ends.append(ends_document)
            size += len(text)
        flush()
        encoding.finish()

    # meta.pkl is written, so renamed, last: a kill between the renames leaves a set check_dataset refuses
    with directory_lock(out, key="dataset directory"), fileio.replaced_together() as write:
        # both token files are open at once, for one pass over the corpus
        write(out / "train.bin", lambda train: write(out / "val.bin", lambda val: encode_into({"train": train, "val": val})))
        if min(counts.values()) == 0:
            raise DataError(f"the {'train' if counts['train'] == 0 else 'val'} split has no tokens; "
                            "give more text or another val_fraction")
        meta = {**encoder.meta(), "dtype": dtype, "characters": dict(characters),
                "leangpt_files": {f"{s}.bin": files[s].fingerprint() for s in ("train", "val")}}
        if tokenizer == "bpe":
            write(out / "tokenizer.json", lambda f: f.write(encoder.tokenizer_json.encode("utf-8")))
        write(out / "meta.pkl", lambda f: f.write(pickle.dumps(meta)))
    return {"tokenizer": tokenizer, "vocab_size": encoder.vocab_size, "dtype": dtype,
            "train_tokens": counts["train"], "val_tokens": counts["val"]}


def corpus_from_input(input_path: str | None, text_key: str = "text") -> Corpus:
    """The given file or directory, else tinyshakespeare downloaded from the usual URL."""
    if input_path:
        path = Path(input_path)
        if not path.exists():
            raise DataError(f"input {input_path!r} not found")
        if not (path.is_file() or path.is_dir()):
            raise DataError(f"input {input_path!r} is not a file or a directory")
        return Corpus(path, text_key=text_key)
    import urllib.request
    try:
        with urllib.request.urlopen(SHAKESPEARE_URL, timeout=30) as response:
            return Corpus(None, text=response.read().decode("utf-8"))
    except Exception as exc:
        raise DataError(f"could not download tinyshakespeare ({exc}); pass a local copy with --input=FILE") from None


class _Silent:
    def advance(self, amount: int) -> None:
        pass

    def finish(self) -> None:
        pass


def quiet(total: int, label: str) -> _Silent:
    """A progress factory that prints nothing (a corpus in memory, tests)."""
    return _Silent()

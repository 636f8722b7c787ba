"""Token datasets: the char, gpt2 and bpe tokenizers, streamed inputs, nanoGPT's prepared data
without meta.pkl, and decoding any of them in sample. No network: GPT-2's BPE is stood in for by
a small tiktoken encoding with GPT-2's pre-tokenizer pattern, built here."""

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest

from leangpt import prepare as prep
from leangpt import tokenizer as tok
from leangpt.config import SampleConfig
from leangpt.data import BatchSampler, DataError, dataset_paths, load_dataset_meta
from leangpt.prepare import Corpus, corpus_from_input, prepare_corpus, quiet
from leangpt.sample import sample
from tests.helpers import CORPUS, run_train, tiny_config

tiktoken = pytest.importorskip("tiktoken")
tokenizers = pytest.importorskip("tokenizers")

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
TEXT = CORPUS * 30


def small_gpt2_encoding():
    """A byte-level tiktoken encoding with GPT-2's pattern and a few merges, eot last like GPT-2's."""
    ranks = {bytes([i]): i for i in range(256)}
    for merge in (b"Ci", b"ti", b"ze", b"en", b"Citi", b"zen", b"Citizen", b" s", b"pe", b"ak", b"\n\n", b"Fi", b"rs"):
        ranks[merge] = len(ranks)
    return tiktoken.Encoding("small-gpt2", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": len(ranks)})


@pytest.fixture
def gpt2(monkeypatch):
    encoding = small_gpt2_encoding()
    monkeypatch.setattr(tok, "gpt2_encoding", lambda: encoding)
    return encoding


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks and pieces of a few hundred characters, so a small corpus is cut many times."""
    monkeypatch.setattr(prep, "BLOCK_CHARS", 700)
    monkeypatch.setattr(prep, "PIECE_CHARS", 90)


def ids(path, dtype="uint16"):
    return np.fromfile(path, dtype=dtype).astype(np.int64)


def test_gpt2_ids_are_the_encodings_own_for_each_split_however_the_file_is_cut(tmp_path, gpt2, small_blocks):
    (tmp_path / "input.txt").write_text(TEXT)
    stats = prepare_corpus(corpus_from_input(str(tmp_path / "input.txt")), tmp_path / "d", "gpt2", progress=quiet)
    split = int(len(TEXT) * 0.9)  # nanoGPT's data/shakespeare/prepare.py: characters, then encode_ordinary each
    assert ids(tmp_path / "d" / "train.bin").tolist() == gpt2.encode_ordinary(TEXT[:split])
    assert ids(tmp_path / "d" / "val.bin").tolist() == gpt2.encode_ordinary(TEXT[split:])
    assert (stats["vocab_size"], stats["dtype"]) == (50304, "uint16")
    meta = pickle.loads((tmp_path / "d" / "meta.pkl").read_bytes())
    assert (meta["tokenizer"], meta["vocab_size"]) == ("gpt2", 50304)


def test_safe_cuts_never_change_the_ids_of_awkward_whitespace(gpt2):
    text = "a  \n\n b\n\nc\t\n  d'll 12 3\n\n\n" * 40 + "X\nY" * 50
    pieces = list(prep._pieces(text, size=7))
    assert "".join(pieces) == text and len(pieces) > 10
    assert sum((gpt2.encode_ordinary(p) for p in pieces), []) == gpt2.encode_ordinary(text)


def test_gpt2_documents_end_with_endoftext_as_nanogpts_openwebtext(tmp_path, gpt2):
    docs = [f"Document {i}: " + CORPUS[: 40 + 7 * i] for i in range(10)]
    folder = tmp_path / "docs"
    folder.mkdir()
    for i, doc in enumerate(docs):
        (folder / f"{i:02d}.txt").write_text(doc)
    prepare_corpus(corpus_from_input(str(folder)), tmp_path / "d", "gpt2", progress=quiet)
    eot = gpt2.eot_token
    expect = lambda part: sum((gpt2.encode_ordinary(d) + [eot] for d in part), [])  # noqa: E731
    assert ids(tmp_path / "d" / "train.bin").tolist() == expect(docs[:9])  # the first 90% of the documents
    assert ids(tmp_path / "d" / "val.bin").tolist() == expect(docs[9:])


def test_jsonl_documents_and_a_bad_line(tmp_path, gpt2):
    docs = [CORPUS[i:i + 60] for i in range(0, 600, 60)]
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"text": d, "id": i}) + "\n" for i, d in enumerate(docs)))
    prepare_corpus(corpus_from_input(str(path)), tmp_path / "d", "gpt2", progress=quiet)
    assert ids(tmp_path / "d" / "val.bin").tolist() == gpt2.encode_ordinary(docs[9]) + [gpt2.eot_token]
    path.write_text(json.dumps({"text": "fine"}) + "\n" + json.dumps({"body": "x"}) + "\n")
    with pytest.raises(DataError, match=r"c.jsonl:2 has no string field 'text' \(set the field with --text_key"):
        prepare_corpus(corpus_from_input(str(path)), tmp_path / "e", "gpt2", progress=quiet)
    path.write_text("{not json\n")
    with pytest.raises(DataError, match=r"c.jsonl:1 is not a JSON object"):
        prepare_corpus(corpus_from_input(str(path)), tmp_path / "e", "gpt2", progress=quiet)
    assert not (tmp_path / "e").exists()  # nothing half-written


def test_bpe_is_trained_offline_and_its_ids_are_the_librarys_for_the_whole_text(tmp_path, small_blocks):
    (tmp_path / "input.txt").write_text(TEXT)
    stats = prepare_corpus(corpus_from_input(str(tmp_path / "input.txt")), tmp_path / "d", "bpe", 300, progress=quiet)
    reference = tokenizers.Tokenizer.from_file(str(tmp_path / "d" / "tokenizer.json"))
    split = int(len(TEXT) * 0.9)
    assert ids(tmp_path / "d" / "train.bin").tolist() == reference.encode(TEXT[:split]).ids
    assert ids(tmp_path / "d" / "val.bin").tolist() == reference.encode(TEXT[split:]).ids
    assert stats["vocab_size"] == reference.get_vocab_size() <= 300
    assert reference.decode(reference.encode(TEXT[:500]).ids) == TEXT[:500]  # byte-level: it round-trips
    meta = pickle.loads((tmp_path / "d" / "meta.pkl").read_bytes())
    assert meta["tokenizer_json"] == (tmp_path / "d" / "tokenizer.json").read_text()


def test_a_vocabulary_over_uint16_is_written_as_uint32(tmp_path, monkeypatch):
    assert (tok.dtype_for(65536), tok.dtype_for(65537)) == ("uint16", "uint32")
    monkeypatch.setattr(prep, "dtype_for", lambda size: "uint32")  # as a vocabulary of 65537+ would be
    stats = prepare_corpus(Corpus(None, text=TEXT), tmp_path / "d", "bpe", 300, progress=quiet)
    assert stats["dtype"] == "uint32"
    reference = tokenizers.Tokenizer.from_file(str(tmp_path / "d" / "tokenizer.json"))
    assert ids(tmp_path / "d" / "train.bin", "uint32").tolist() == reference.encode(TEXT[:int(len(TEXT) * 0.9)]).ids
    assert (tmp_path / "d" / "train.bin").stat().st_size == 4 * stats["train_tokens"]
    assert load_dataset_meta(dataset_paths(tmp_path, "d"))["dtype"] == "uint32"


def test_gpt2_without_its_encoding_file_is_one_line_naming_bpe(tmp_path, monkeypatch):
    def offline(name):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    (tmp_path / "input.txt").write_text(TEXT)
    with pytest.raises(DataError, match="could not be loaded by tiktoken.*--tokenizer=bpe") as info:
        prepare_corpus(corpus_from_input(str(tmp_path / "input.txt")), tmp_path / "d", "gpt2", progress=quiet)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "d").exists()


@pytest.mark.slow  # spawns processes or runs a sweep
@pytest.mark.parametrize("argv, message", [
    (["--tokenizer=sentencepiece"], "tokenizer='sentencepiece' is not allowed; choose one of: char, gpt2, bpe"),
    (["--tokenizer=bpe", "--vocab_size=100"], "vocab_size=100 must be at least 258"),
    (["--vocab_size=500"], "vocab_size=500 is set by the char tokenizer itself"),
    (["--input=missing.txt"], "input 'missing.txt' not found"),
])
def test_bad_prepare_input_is_one_error_line(tmp_path, argv, message):
    out = subprocess.run([sys.executable, "-m", "leangpt", "prepare", "--name=x", f"--data_dir={tmp_path}", *argv],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode != 0
    assert out.stderr.strip().splitlines() == [f"error: {message}"] or message in out.stderr.strip().splitlines()[-1]
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert not (tmp_path / "x").exists()


def test_a_file_that_is_not_text_is_one_error(tmp_path):
    (tmp_path / "blob.txt").write_bytes(b"abc\xff\xfe" * 100)
    with pytest.raises(DataError, match="is not UTF-8 text"):
        prepare_corpus(corpus_from_input(str(tmp_path / "blob.txt")), tmp_path / "d", "char", progress=quiet)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text(CORPUS)
    (folder / "b.bin").write_bytes(b"\x00\xff" * 10)
    with pytest.raises(DataError, match="b.bin' is not UTF-8 text"):
        prepare_corpus(corpus_from_input(str(folder)), tmp_path / "d", "char", progress=quiet)
    assert not (tmp_path / "d").exists()


def test_meta_of_another_tokenizer_than_the_token_files_is_refused(tmp_path):
    prepare_corpus(Corpus(None, text=TEXT), tmp_path / "bpe", "bpe", 300, progress=quiet)
    prepare_corpus(Corpus(None, text=TEXT), tmp_path / "char", "char", progress=quiet)
    (tmp_path / "char" / "meta.pkl").write_bytes((tmp_path / "bpe" / "meta.pkl").read_bytes())
    with pytest.raises(DataError, match="is not the file meta.pkl was written with"):
        load_dataset_meta(dataset_paths(tmp_path, "char"))
    meta = pickle.loads((tmp_path / "bpe" / "meta.pkl").read_bytes())
    (tmp_path / "bpe" / "meta.pkl").write_bytes(pickle.dumps({**meta, "vocab_size": 70_000}))
    with pytest.raises(DataError, match="vocab_size 70000 does not fit its uint16 token files"):
        load_dataset_meta(dataset_paths(tmp_path, "bpe"))


def nanogpt_gpt2_dataset(root, gpt2):
    """What nanoGPT's data/shakespeare/prepare.py leaves: GPT-2 ids in uint16, no meta.pkl."""
    root.mkdir(parents=True)
    split = int(len(TEXT) * 0.9)
    np.array(gpt2.encode_ordinary(TEXT[:split]), dtype=np.uint16).tofile(root / "train.bin")
    np.array(gpt2.encode_ordinary(TEXT[split:]), dtype=np.uint16).tofile(root / "val.bin")


def test_nanogpts_prepared_gpt2_data_trains_with_50304_ids_and_samples_decode(tmp_path, gpt2, monkeypatch):
    nanogpt_gpt2_dataset(tmp_path / "data" / "tiny", gpt2)
    config = tiny_config(tmp_path / "data", tmp_path / "out", max_iters=4, lr_decay_iters=4, eval_interval=4)
    result, lines = run_train(config)
    assert any("no meta.pkl: read as nanoGPT's GPT-2 data" in line for line in lines)
    import torch
    ckpt = torch.load(tmp_path / "out" / "ckpt.pt", weights_only=False)
    assert ckpt["model_args"]["vocab_size"] == 50304 and ckpt["meta"]["tokenizer"] == "gpt2"
    printed = []
    texts = sample(SampleConfig(out_dir=str(tmp_path / "out"), start="First", num_samples=1, max_new_tokens=30,
                                device="cpu", data_dir=str(tmp_path / "data")), out=printed.append, info=lambda s: None)
    assert texts[0].startswith("First") and len(texts[0]) > len("First")

    def offline():
        raise DataError("GPT-2's BPE encoding could not be loaded by tiktoken (ConnectionError)")

    monkeypatch.setattr(tok, "gpt2_encoding", offline)
    notes = []
    texts = sample(SampleConfig(out_dir=str(tmp_path / "out"), num_samples=1, max_new_tokens=5, device="cpu"),
                   out=lambda s: None, info=notes.append)
    assert texts[0].split()[0] == "198" and len(texts[0].split()) == 6 and all(w.isdigit() for w in texts[0].split())
    assert any("printed as token ids" in n for n in notes)
    with pytest.raises(DataError, match="could not be loaded"):
        sample(SampleConfig(out_dir=str(tmp_path / "out"), start="First", num_samples=1, max_new_tokens=5,
                            device="cpu"), out=lambda s: None, info=lambda s: None)


def test_a_bpe_model_samples_from_its_checkpoint_alone(tmp_path):
    prepare_corpus(Corpus(None, text=TEXT), tmp_path / "data" / "tiny", "bpe", 300, progress=quiet)
    config = tiny_config(tmp_path / "data", tmp_path / "out", max_iters=4, lr_decay_iters=4, eval_interval=4)
    run_train(config)
    (tmp_path / "data" / "tiny" / "meta.pkl").unlink()  # the checkpoint carries the tokenizer
    reference = tokenizers.Tokenizer.from_file(str(tmp_path / "data" / "tiny" / "tokenizer.json"))
    texts = sample(SampleConfig(out_dir=str(tmp_path / "out"), start="First Citizen", num_samples=1,
                                max_new_tokens=20, device="cpu", data_dir=str(tmp_path / "elsewhere")),
                   out=lambda s: None, info=lambda s: None)
    assert texts[0].startswith("First Citizen")
    assert reference.decode(reference.encode(texts[0]).ids) == texts[0]


def test_sampler_reads_uint32_files(tmp_path):
    values = np.arange(100_000, 100_400, dtype=np.uint32)
    values.tofile(tmp_path / "t.bin")
    x, y = BatchSampler(tmp_path / "t.bin", 8, 3, seed=0, dtype="uint32").next_batch()
    assert int(x.min()) >= 100_000 and (y[:, :-1] == x[:, 1:]).all() and ((y - x) == 1).all()


def test_a_saved_hugging_face_dataset_is_read_split_by_split_train_first(tmp_path, monkeypatch, gpt2):
    """The glue to `datasets.load_from_disk`, with a stand-in module (the library is not a test
    dependency): a DatasetDict's splits are read train first, in batches, from the text column."""
    import types

    class Dataset:
        def __init__(self, texts):
            self.texts, self.column_names = texts, ["text", "id"]

        def iter(self, batch_size):
            for i in range(0, len(self.texts), batch_size):
                yield {"text": self.texts[i:i + batch_size]}

    class DatasetDict(dict):
        pass

    docs = {"validation": [f"v{i} " + CORPUS[:30] for i in range(3)], "train": [f"t{i} " + CORPUS[:50] for i in range(7)]}
    fake = types.SimpleNamespace(Dataset=Dataset, DatasetDict=DatasetDict,
                                 load_from_disk=lambda path: DatasetDict({k: Dataset(v) for k, v in docs.items()}))
    monkeypatch.setitem(sys.modules, "datasets", fake)
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "dataset_dict.json").write_text('{"splits": ["train", "validation"]}')
    prepare_corpus(corpus_from_input(str(saved)), tmp_path / "d", "gpt2", progress=quiet)
    ordered = docs["train"] + docs["validation"]  # 10 documents: the first 9 train
    eot = gpt2.eot_token
    assert ids(tmp_path / "d" / "train.bin").tolist() == sum((gpt2.encode_ordinary(d) + [eot] for d in ordered[:9]), [])
    assert ids(tmp_path / "d" / "val.bin").tolist() == gpt2.encode_ordinary(ordered[9]) + [eot]
    with pytest.raises(DataError, match=r"has no column 'body' \(columns: text, id; set it with --text_key"):
        prepare_corpus(corpus_from_input(str(saved), text_key="body"), tmp_path / "e", "gpt2", progress=quiet)
    monkeypatch.setitem(sys.modules, "datasets", None)  # not installed
    with pytest.raises(DataError, match="needs the datasets library"):
        prepare_corpus(corpus_from_input(str(saved)), tmp_path / "e", "gpt2", progress=quiet)


def test_progress_says_how_much_is_done_how_fast_and_what_is_left():
    import io
    stream = io.StringIO()
    progress = prep.Progress(4_000_000, "encoding", stream=stream, every=0.0)
    progress.advance(1_000_000)
    progress.finish()
    first, last = stream.getvalue().splitlines()
    assert first.startswith("prepare: encoding 1.0 of 4.0 MB (25%), ") and "MB/s" in first and first.endswith("s left")
    assert last.startswith("prepare: encoding 4.0 of 4.0 MB (100%)")


@pytest.mark.parametrize("inside", ["", "sub"])
def test_a_dataset_directory_inside_its_input_directory_is_refused_before_writing(tmp_path, inside):
    """It used to write train.bin there, and the rerun then read train.bin as corpus text."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text(CORPUS)
    target = folder / inside if inside else folder
    with pytest.raises(DataError, match=f"the dataset directory {target} is inside the input directory {folder}: "):
        prepare_corpus(corpus_from_input(str(folder)), target, "char", progress=quiet)
    assert sorted(p.name for p in folder.rglob("*")) == ["a.txt"]

import pickle

import numpy as np
import pytest
import torch

from leangpt.data import BatchSampler, CharTokenizer, DataError, dataset_paths, prepare_dataset, read_text


def test_tokenizer_round_trip():
    text = "Hello, World!\nÄpfel"
    tok = CharTokenizer.from_text(text)
    assert tok.vocab_size == len(set(text))
    assert tok.decode(tok.encode(text)) == text
    assert tok.stoi["\n"] == 0  # sorted order: newline sorts first


def test_unknown_prompt_character_is_clear():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(DataError, match="not in the vocabulary: 'xz'"):
        tok.encode("axbz")


def test_prepare_writes_split_files(tmp_path):
    text = "abcdefghij" * 100
    stats = prepare_dataset(text, tmp_path / "d")
    train = np.fromfile(tmp_path / "d" / "train.bin", dtype=np.uint16)
    val = np.fromfile(tmp_path / "d" / "val.bin", dtype=np.uint16)
    assert len(train) == 900 and len(val) == 100 and stats["vocab_size"] == 10
    meta = pickle.loads((tmp_path / "d" / "meta.pkl").read_bytes())
    assert meta["vocab_size"] == 10 and meta["itos"][0] == "a"
    assert "".join(meta["itos"][i] for i in train[:12]) == "abcdefghijab"
    assert "".join(meta["itos"][i] for i in val[:3]) == "abc"


def test_batches_are_shifted_windows(tmp_path):
    prepare_dataset("".join(chr(65 + i % 26) for i in range(2000)), tmp_path / "d")
    sampler = BatchSampler(tmp_path / "d" / "train.bin", block_size=8, batch_size=5, seed=0)
    x, y = sampler.next_batch()
    assert x.shape == (5, 8) and y.shape == (5, 8) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert torch.equal((x[:, 1:] - x[:, :-1]) % 26, torch.ones(5, 7, dtype=torch.int64))


def test_ranks_split_the_global_batch(tmp_path):
    prepare_dataset("abcdefghijklmnop" * 200, tmp_path / "d")
    path = tmp_path / "d" / "train.bin"
    whole = BatchSampler(path, 8, 6, seed=3).next_batch()[0]
    halves = [BatchSampler(path, 8, 3, seed=3, rank=r, world_size=2).next_batch()[0] for r in (0, 1)]
    assert torch.equal(torch.cat(halves), whole)


def test_missing_dataset_says_how_to_prepare(tmp_path):
    with pytest.raises(DataError, match="python data/shakespeare_char/prepare.py"):
        dataset_paths(tmp_path, "shakespeare_char")
    with pytest.raises(DataError, match="leangpt prepare --input=YOUR.txt --name=mine"):
        dataset_paths(tmp_path, "mine")


def test_read_text_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_text(str(tmp_path / "nope.txt"))
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00abc")
    with pytest.raises(DataError, match="not UTF-8"):
        read_text(str(bad))


def test_offline_download_names_input(monkeypatch):
    import urllib.request

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match="--input=FILE"):
        read_text(None)


def test_block_size_larger_than_data(tmp_path):
    prepare_dataset("abcdefghij" * 3, tmp_path / "d")
    with pytest.raises(DataError, match="not more than block_size=64"):
        BatchSampler(tmp_path / "d" / "val.bin", 64, 2, seed=0)


def test_tinyshakespeare_prepares_like_nanogpt(shakespeare_path, tmp_path):
    """nanoGPT's shakespeare_char: 65 characters, 1,003,854 train and 111,540 val tokens."""
    stats = prepare_dataset(read_text(str(shakespeare_path)), tmp_path / "sc")
    assert stats == {"tokenizer": "char", "dtype": "uint16", "vocab_size": 65, "train_tokens": 1_003_854,
                     "val_tokens": 111_540}
    meta = pickle.loads((tmp_path / "sc" / "meta.pkl").read_bytes())
    assert "".join(meta["itos"][i] for i in range(13)) == "\n !$&',-.3:;?"


def test_meta_pkl_that_would_run_code_is_refused(tmp_path):
    import os
    import pickle
    from leangpt.data import load_meta

    class Payload:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    bad = tmp_path / "meta.pkl"
    bad.write_bytes(pickle.dumps({"vocab_size": 2, "stoi": {}, "itos": {}, "x": Payload()}))
    with pytest.raises(DataError, match="names posix.system|names os.system|plain data"):
        load_meta(bad)
    assert not (tmp_path / "pwned").exists()
    # nanoGPT's own meta.pkl (plain dicts, str and int) still loads
    good = tmp_path / "good.pkl"
    good.write_bytes(pickle.dumps({"vocab_size": 2, "stoi": {"a": 0, "b": 1}, "itos": {0: "a", 1: "b"}}))
    assert load_meta(good)["stoi"] == {"a": 0, "b": 1}


def test_written_files_follow_the_umask(tmp_path):
    import os
    import stat
    from leangpt.fileio import atomic_write_bytes
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "f.bin", b"x")
        prepare_dataset("abcabc" * 20, tmp_path / "ds")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.bin").stat().st_mode) == 0o644
    assert all(stat.S_IMODE((tmp_path / "ds" / n).stat().st_mode) == 0o644 for n in ("train.bin", "val.bin", "meta.pkl"))


def test_prepare_replaces_all_three_files_or_none(tmp_path, monkeypatch):
    from leangpt import fileio
    prepare_dataset("abcabc" * 20, tmp_path / "ds")
    before = {n: (tmp_path / "ds" / n).read_bytes() for n in ("train.bin", "val.bin", "meta.pkl")}
    real = fileio._write_temporary
    calls = []

    def fail_on_second(path, write):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(path, write)

    monkeypatch.setattr(fileio, "_write_temporary", fail_on_second)
    with pytest.raises(OSError):
        prepare_dataset("xyzxyzw" * 30, tmp_path / "ds")
    assert {n: (tmp_path / "ds" / n).read_bytes() for n in before} == before
    assert not [p for p in (tmp_path / "ds").iterdir() if p.name.endswith(".tmp")]


def test_a_vocabulary_of_65536_characters_fits_uint16_and_one_more_takes_uint32(tmp_path):
    import numpy as np
    text = "".join(chr(0x4E00 + i) if i < 0x5000 else chr(0x10000 + i) for i in range(65536))
    stats = prepare_dataset(text * 2, tmp_path / "big")
    assert (stats["vocab_size"], stats["dtype"]) == (65536, "uint16")
    bigger = text + chr(0x30000)  # sorts last: id 65536
    stats = prepare_dataset(bigger * 2, tmp_path / "bigger")
    assert (stats["vocab_size"], stats["dtype"]) == (65537, "uint32")
    ids = np.fromfile(tmp_path / "bigger" / "train.bin", dtype=np.uint32)
    assert ids[len(bigger) - 1] == 65536 and ids.size == int(2 * len(bigger) * 0.9)
    sampler = BatchSampler(tmp_path / "bigger" / "train.bin", 8, 2, seed=0, vocab_size=65537, dtype="uint32")
    x, _ = sampler.next_batch()
    assert int(x.max()) < 65537


def test_token_ids_beyond_the_vocabulary_are_one_error(tmp_path):
    import numpy as np
    prepare_dataset("abcabc" * 20, tmp_path / "ds")
    np.array([0, 1, 2, 7] * 30, dtype=np.uint16).tofile(tmp_path / "ds" / "train.bin")
    sampler = BatchSampler(tmp_path / "ds" / "train.bin", 8, 4, seed=0, vocab_size=3)
    with pytest.raises(DataError, match="token id 7, not below the vocabulary size 3"):
        sampler.next_batch()

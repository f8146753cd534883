"""The tokenization cache: ids as the encoding convention, hits, misses, shared by processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from instructkit.modeling import encode_pair, load_tokenizer
from instructkit.testing import make_tiny_dataset, make_tiny_model, tiny_rows
from instructkit.tiny import save_tiny_model
from instructkit.train import tokenized
from instructkit.train.run import run_training
from instructkit.train.tokenized import EncodingSpec, tokenize_split, tokenize_table

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPEC = EncodingSpec(seq2seq=False, max_source_length=48, max_target_length=24)


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("llama") / "llama", "llama")


@pytest.fixture(scope="module")
def tokenizer(llama_dir):
    return load_tokenizer(str(llama_dir))


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("ds") / "data", train_rows=40)


@pytest.fixture
def calls(monkeypatch):
    """Count the batches that really get tokenized."""
    counter = {"batches": 0}
    real = tokenized.encode_rows

    def counting(*args, **kwargs):
        counter["batches"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(tokenized, "encode_rows", counting)
    return counter


def test_ids_follow_the_encoding_convention(tokenizer, dataset_dir, tmp_path):
    from instructkit.artifacts.dataset import open_split

    for seq2seq in (False, True):
        spec = EncodingSpec(seq2seq, 48, 24, completion_only=True)
        encoded = tokenize_split(tokenizer, dataset_dir, "train", spec, cache_dir=tmp_path)
        table = open_split(dataset_dir, "train")
        assert encoded.dataset.num_rows == table.num_rows == encoded.rows
        for i, row in enumerate(table.to_pylist()):
            pair = encode_pair(tokenizer, row["prompt"], row["completion"], seq2seq, 48, 24)
            cached = encoded.dataset[i]
            assert (cached["input_ids"], cached["labels"]) == (pair.input_ids, pair.labels)
            assert cached["length"] == len(pair.input_ids) and cached["task"] == row["task"]


def test_second_call_hits_and_does_not_tokenize(tokenizer, dataset_dir, tmp_path, calls):
    first = tokenize_split(tokenizer, dataset_dir, "train", SPEC, cache_dir=tmp_path)
    assert first.cache["hit"] is False and calls["batches"] == 1
    index = Path(first.cache["path"]) / tokenized.INDEX_NAME
    written = index.stat().st_mtime_ns
    second = tokenize_split(tokenizer, dataset_dir, "train", SPEC, cache_dir=tmp_path)
    assert second.cache["hit"] is True and second.cache["key"] == first.cache["key"]
    assert calls["batches"] == 1  # nothing tokenized the second time
    assert index.stat().st_mtime_ns == written
    assert second.dataset[:] == first.dataset[:]


def test_changed_option_tokenizer_or_data_misses(
    tokenizer, llama_dir, dataset_dir, tmp_path, calls
):
    base = tokenize_split(tokenizer, dataset_dir, "train", SPEC, cache_dir=tmp_path).cache["key"]
    keys = {base}
    for spec in (
        EncodingSpec(False, 48, 20),
        EncodingSpec(False, 40, 24),
        EncodingSpec(False, 48, 24, completion_only=False),
        EncodingSpec(False, 48, 24, truncate_completions=True),
        EncodingSpec(True, 48, 24),
    ):
        encoded = tokenize_split(tokenizer, dataset_dir, "train", spec, cache_dir=tmp_path)
        assert encoded.cache["hit"] is False
        keys.add(encoded.cache["key"])
    other_tokenizer = load_tokenizer(
        str(save_tiny_model(tmp_path / "other", "llama", vocab_size=300))
    )
    encoded = tokenize_split(other_tokenizer, dataset_dir, "train", SPEC, cache_dir=tmp_path)
    assert encoded.cache["hit"] is False
    keys.add(encoded.cache["key"])
    other_data = make_tiny_dataset(tmp_path / "data2", train_rows=41)
    encoded = tokenize_split(tokenizer, other_data, "train", SPEC, cache_dir=tmp_path)
    assert encoded.cache["hit"] is False
    keys.add(encoded.cache["key"])
    encoded = tokenize_split(tokenizer, dataset_dir, "train", SPEC, limit=5, cache_dir=tmp_path)
    assert encoded.cache["hit"] is False and encoded.dataset.num_rows == 5
    keys.add(encoded.cache["key"])
    assert len(keys) == 9 and calls["batches"] == 9


def test_same_tokenizer_elsewhere_hits(tokenizer, llama_dir, dataset_dir, tmp_path):
    """The key holds the tokenizer's content, not its path."""
    import shutil

    first = tokenize_split(tokenizer, dataset_dir, "train", SPEC, cache_dir=tmp_path)
    shutil.copytree(llama_dir, tmp_path / "copy")
    copy = load_tokenizer(str(tmp_path / "copy"))
    again = tokenize_split(copy, dataset_dir, "train", SPEC, cache_dir=tmp_path)
    assert again.cache["hit"] is True and again.cache["key"] == first.cache["key"]


def test_dropped_rows_are_counted_like_the_in_memory_path(tokenizer, dataset_dir, tmp_path):
    from instructkit.artifacts.dataset import open_split

    spec = EncodingSpec(False, 48, 6)
    cached = tokenize_split(tokenizer, dataset_dir, "train", spec, cache_dir=tmp_path)
    in_memory = tokenize_table(tokenizer, open_split(dataset_dir, "train"), spec)
    assert 0 < cached.dropped < cached.rows == 40
    assert cached.dataset.num_rows == cached.rows - cached.dropped
    for name in ("rows", "dropped", "truncated_completions", "truncated_prompts"):
        assert getattr(cached, name) == getattr(in_memory, name)
    assert cached.dataset[:] == in_memory.dataset[:]
    again = tokenize_split(tokenizer, dataset_dir, "train", spec, cache_dir=tmp_path)
    assert again.cache["hit"] and again.dropped == cached.dropped


def test_num_proc_gives_the_same_rows(tokenizer, tmp_path):
    data = make_tiny_dataset(tmp_path / "data", train_rows=2500)
    one = tokenize_split(tokenizer, data, "train", SPEC, cache_dir=tmp_path / "a")
    two = tokenize_split(tokenizer, data, "train", SPEC, num_proc=2, cache_dir=tmp_path / "b")
    assert one.cache["key"] == two.cache["key"]  # num_proc is not part of the key
    assert one.dataset["input_ids"][:] == two.dataset["input_ids"][:]


CONCURRENT = textwrap.dedent(
    """
    import json, sys
    from instructkit.modeling import load_tokenizer
    from instructkit.train.tokenized import EncodingSpec, tokenize_split
    model, data, cache, start = sys.argv[1:]
    tokenizer = load_tokenizer(model)
    import os, time
    while not os.path.exists(start):  # start both processes' work at the same moment
        time.sleep(0.01)
    out = tokenize_split(tokenizer, data, "train", EncodingSpec(False, 48, 24), cache_dir=cache)
    print(json.dumps({"hit": out.cache["hit"], "key": out.cache["key"],
                      "ids": out.dataset["input_ids"][:]}))
    """
)


def test_two_processes_share_one_entry(llama_dir, tmp_path):
    data = make_tiny_dataset(tmp_path / "data", train_rows=3000)
    cache, start = tmp_path / "cache", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT, str(llama_dir), str(data), str(cache), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    start.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(r["hit"] for r in results) == [False, True]  # one built, the other waited
    assert results[0]["key"] == results[1]["key"] and results[0]["ids"] == results[1]["ids"]
    entries = [p for p in (cache / "tokenized").iterdir() if p.is_dir()]
    assert [p.name for p in entries] == [results[0]["key"]]  # no temporary left behind
    index = json.loads((entries[0] / tokenized.INDEX_NAME).read_text())
    assert index["stats"]["rows"] == 3000


def test_a_lost_race_keeps_the_winners_entry(tokenizer, dataset_dir, tmp_path, monkeypatch):
    """Without a working lock two builders may both finish: the rename keeps one entry."""
    import contextlib

    first = tokenize_split(tokenizer, dataset_dir, "train", SPEC, cache_dir=tmp_path)
    entry = Path(first.cache["path"])
    monkeypatch.setattr(tokenized, "file_lock", lambda path: contextlib.nullcontext())
    real, asked = tokenized._is_complete, []

    def raced(path):  # not there before or under the lock; there when the rename fails
        asked.append(path)
        return len(asked) > 2 and real(path)

    monkeypatch.setattr(tokenized, "_is_complete", raced)
    again = tokenize_split(tokenizer, dataset_dir, "train", SPEC, cache_dir=tmp_path)
    assert again.dataset[:] == first.dataset[:] and again.cache["hit"] is False
    assert [p for p in entry.parent.iterdir() if p.is_dir()] == [entry]


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("INSTRUCTKIT_CACHE", str(tmp_path / "c"))
    assert tokenized.cache_root() == tmp_path / "c"
    monkeypatch.delenv("INSTRUCTKIT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert tokenized.cache_root() == tmp_path / "xdg" / "instructkit"


def test_in_memory_table_encoding_matches(tokenizer):
    table = tiny_rows(6)
    encoded = tokenize_table(tokenizer, table, SPEC)
    assert encoded.rows == 6 and encoded.cache == {"hit": False}
    first = table.to_pylist()[0]
    pair = encode_pair(tokenizer, first["prompt"], first["completion"], False, 48, 24)
    assert encoded.dataset[0]["input_ids"] == pair.input_ids


def test_run_record_has_the_cache_key_and_the_second_run_hits(llama_dir, dataset_dir, tmp_path):
    options = {"max_steps": 1, "batch_size": 4, "max_source_length": 48, "max_target_length": 24}
    first = run_training(dataset_dir, "full", str(llama_dir), tmp_path / "a", options, quiet=True)
    second = run_training(dataset_dir, "full", str(llama_dir), tmp_path / "b", options, quiet=True)
    one, two = first.metadata["tokenization"], second.metadata["tokenization"]
    assert (one["hit"], two["hit"]) == (False, True) and one["key"] == two["key"]
    # validation sets are a capped sample per task, encoded in memory (not cached)
    assert two["validation"] == {"cached": False, "rows": {"summarize": 4, "title": 4}}
    saved = json.loads((tmp_path / "b" / "instructkit-train.json").read_text())
    assert saved["tokenization"]["key"] == one["key"]


def test_an_empty_split_and_chunks(tokenizer, tmp_path, monkeypatch):
    import pyarrow as pa

    train = pa.concat_tables([tiny_rows(10, offset=i) for i in (0, 10, 20)])  # three batches
    splits = {"train": train, "validation": tiny_rows(0)}
    data = make_tiny_dataset(tmp_path / "data", splits=splits)
    empty = tokenize_split(tokenizer, data, "validation", SPEC, cache_dir=tmp_path)
    assert empty.rows == 0 and empty.dataset.num_rows == 0
    monkeypatch.setattr(tokenized, "CHUNK_ROWS", 7)  # several chunks, some rows dropped
    spec = EncodingSpec(False, 48, 6)
    chunked = tokenize_split(tokenizer, data, "train", spec, cache_dir=tmp_path / "a")
    whole = tokenize_table(tokenizer, tiny_rows(30), spec)
    assert len(json.loads((Path(chunked.cache["path"]) / "index.json").read_text())["files"]) > 1
    assert chunked.dataset[:] == whole.dataset[:] and chunked.dropped == whole.dropped > 0


# ---------------------------------------------------------------- the backend fast path

TEXTS = [
    "Summarize: #Person1#: Hi.  How are you?\n#Person2#: Fine.",
    "",
    "   leading and trailing spaces   ",
    "tabs\tand\nnewlines\n\n",
    "unicode: café, naïve, 東京, emoji 🙂",
    "special tokens as text: <s> </s> <pad> <unk>",
    "a" * 500,
]


@pytest.mark.parametrize("arch", ["llama", "gpt2", "t5"])
def test_batch_ids_are_the_tokenizer_calls_ids(arch, tmp_path, monkeypatch):
    from tokenizers.processors import TemplateProcessing

    from instructkit.modeling import batch_ids

    tok = load_tokenizer(str(make_tiny_model(tmp_path / arch, arch)))
    if arch == "llama":  # a Llama-style bos added on encode, as real Llama tokenizers do
        eos = (tok.eos_token, tok.eos_token_id)
        tok.backend_tokenizer.post_processor = TemplateProcessing(
            single=f"{eos[0]} $A", special_tokens=[eos]
        )
    texts = [*TEXTS, tok.eos_token or "", f"text{tok.eos_token}"]
    expected = [list(ids) for ids in tok(texts)["input_ids"]]
    # the fast path really runs: the Python __call__ is not reached
    monkeypatch.setattr(type(tok), "__call__", lambda *a, **k: pytest.fail("__call__ used"))
    assert arch != "llama" or expected[0][0] == tok.eos_token_id  # special tokens do get added
    assert batch_ids(tok, texts) == expected
    assert batch_ids(tok, []) == []


def test_batch_ids_fall_back_when_the_backend_would_truncate(llama_dir):
    from instructkit.modeling import batch_ids

    tok = load_tokenizer(str(llama_dir))  # its own copy: the fixture's stays untouched
    full = batch_ids(tok, TEXTS)
    tok.backend_tokenizer.enable_truncation(max_length=3)  # state a user's call could leave
    assert tok.backend_tokenizer.encode_batch_fast(TEXTS[:1])[0].ids != full[0]
    assert batch_ids(tok, TEXTS) == full  # through __call__, which turns truncation off
    tok.backend_tokenizer.enable_padding(length=600)
    assert batch_ids(tok, TEXTS) == full

"""Packing: best-fit-decreasing bins, label boundaries, and per-row losses equal to unpacked."""

from __future__ import annotations

import random

import numpy as np
import pytest

from instructkit.errors import OptionsError, TrainerError
from instructkit.modeling import IGNORE_INDEX, load_tokenizer
from instructkit.testing import make_tiny_dataset, make_tiny_model, tiny_rows
from instructkit.train.base import TrainerOptions, build_options, get_trainer
from instructkit.train.packing import (
    PackedCollator,
    PackedDataset,
    apply_length_grouping,
    check_packing_support,
    pack_bfd,
    pack_rows,
    padding_fraction,
)
from instructkit.train.run import run_training
from instructkit.train.tokenized import EncodingSpec, tokenize_table

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {arch: make_tiny_model(root / arch, arch) for arch in ("llama", "gpt2", "t5")}


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("ds") / "data", train_rows=24)


# ---------------------------------------------------------------- bins


def reference_bfd(lengths, capacity):
    """Textbook best-fit decreasing, quadratic: the bins each row lands in."""
    spaces, bins = [], []
    for row in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        fits = [b for b, space in enumerate(spaces) if space >= lengths[row]]
        if fits:
            best = min(fits, key=lambda b: (spaces[b], b))
            spaces[best] -= lengths[row]
            bins[best].append(row)
        else:
            spaces.append(capacity - lengths[row])
            bins.append([row])
    return sorted(sorted(b) for b in bins)


@pytest.mark.parametrize("seed", range(5))
def test_bfd_places_every_row_once_within_capacity(seed):
    rng = random.Random(seed)
    lengths = [rng.randint(1, 64) for _ in range(300)]
    order, offsets = pack_bfd(lengths, 64)
    assert sorted(order.tolist()) == list(range(300))
    bins = [order[offsets[b] : offsets[b + 1]].tolist() for b in range(len(offsets) - 1)]
    assert all(sum(lengths[i] for i in b) <= 64 for b in bins)
    # the same number of bins, and bins of the same sizes, as textbook best fit
    reference = reference_bfd(lengths, 64)
    assert len(bins) == len(reference)
    assert sorted(sum(lengths[i] for i in b) for b in bins) == sorted(
        sum(lengths[i] for i in b) for b in reference
    )
    again = pack_bfd(lengths, 64)
    assert (again[0] == order).all() and (again[1] == offsets).all()  # deterministic


def test_bfd_fills_bins_and_refuses_a_row_too_long():
    order, offsets = pack_bfd([5, 3, 4, 4, 2, 6], 8)
    assert np.diff(offsets).tolist() == [2, 2, 2]  # 6+2, 5+3, 4+4: every bin full
    with pytest.raises(TrainerError, match="packing_length=8"):
        pack_bfd([9], 8)


def test_packed_rows_restart_positions_and_never_predict_across_rows():
    packed = pack_rows([[1, 2, 3], [4, 5]], [[1, 2, 3], [-100, 5]])
    assert packed["input_ids"] == [1, 2, 3, 4, 5]
    assert packed["position_ids"] == [0, 1, 2, 0, 1]
    assert packed["labels"] == [IGNORE_INDEX, 2, 3, IGNORE_INDEX, 5]


def test_collator_pads_as_a_separate_sequence_and_flattens():
    features = [pack_rows([[1, 2, 3]], [[1, 2, 3]]), {"input_ids": [7, 8], "labels": [7, 8]}]
    batch = PackedCollator(pad_token_id=0)(features)
    assert "attention_mask" not in batch
    assert batch["input_ids"].tolist() == [[1, 2, 3], [7, 8, 0]]
    assert batch["labels"].tolist() == [[-100, 2, 3], [-100, 8, -100]]
    assert batch["position_ids"].tolist() == [[0, 1, 2], [0, 1, 0]]
    flat = PackedCollator(pad_token_id=0, flatten=True)(features)
    assert flat["input_ids"].tolist() == [[1, 2, 3, 7, 8]]
    assert flat["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    assert flat["labels"].tolist() == [[-100, 2, 3, -100, 8]]


def test_padding_fraction_of_equal_rows_is_zero():
    assert padding_fraction(np.full(16, 5), 4) == 0.0
    assert padding_fraction(np.array([1, 3]), 2) == pytest.approx(1 / 3)


# ---------------------------------------------------------------- losses on real models


def per_row_losses(model, batch, rows_per_line):
    """Loss of each packed row (mean over its predicted tokens), in ``rows_per_line`` order."""
    import torch

    with torch.no_grad():
        logits = model(**batch).logits.float()
    logp = torch.log_softmax(logits[:, :-1], dim=-1)
    targets = batch["labels"][:, 1:]
    starts = (batch["position_ids"] == 0).long().cumsum(-1)[:, 1:] - 1  # row of each target
    losses = {}
    for line, rows in enumerate(rows_per_line):
        for k, row in enumerate(rows):
            mask = (starts[line] == k) & (targets[line] != IGNORE_INDEX)
            picked = logp[line][mask].gather(-1, targets[line][mask][:, None])
            losses[row] = -float(picked.mean())
    return losses


def unpacked_losses(model, rows):
    import torch

    losses = {}
    for index in range(len(rows)):
        ids = torch.tensor([rows[index]["input_ids"]])
        labels = torch.tensor([rows[index]["labels"]])
        with torch.no_grad():
            losses[index] = float(model(input_ids=ids, labels=labels, use_cache=False).loss)
    return losses


def check_packed_equals_unpacked(model_dir, implementation, completion_only=True):
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(  # fp32: SmolLM2 is saved in bf16
        model_dir, attn_implementation=implementation, dtype=torch.float32
    )
    model.eval()
    model.config.use_cache = False  # as the Trainer sets it (args.use_cache=False)
    check_packing_support(model, "bfd")
    spec = EncodingSpec(False, 48, 24, completion_only=completion_only)
    rows = tokenize_table(tokenizer, tiny_rows(12), spec).dataset
    expected = unpacked_losses(model, rows)
    packed = PackedDataset(rows, capacity=96)
    assert len(packed) < len(rows) and packed.describe()["fill"] > 0.5
    bins = [
        packed.order[packed.offsets[b] : packed.offsets[b + 1]].tolist() for b in range(len(packed))
    ]
    batch = PackedCollator(tokenizer.pad_token_id)([packed[b] for b in range(len(packed))])
    got = per_row_losses(model, batch, bins)
    assert sorted(got) == list(range(len(rows)))
    for row in expected:
        assert got[row] == pytest.approx(expected[row], abs=1e-5), row
    # the model's own loss on the packed batch is the token-weighted mean of the rows' losses
    counts = {i: sum(1 for x in rows[i]["labels"][1:] if x != IGNORE_INDEX) for i in expected}
    pooled = sum(expected[i] * counts[i] for i in expected) / sum(counts.values())
    with torch.no_grad():
        assert float(model(**batch).loss) == pytest.approx(pooled, abs=1e-5)
    flat = PackedCollator(tokenizer.pad_token_id, flatten=True)([rows[i] for i in range(len(rows))])
    got = per_row_losses(model, flat, [list(range(len(rows)))])
    assert all(got[i] == pytest.approx(expected[i], abs=1e-5) for i in expected)


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_packed_losses_equal_unpacked_per_row(models, arch, implementation):
    check_packed_equals_unpacked(models[arch], implementation)


def test_packed_losses_equal_unpacked_with_loss_on_the_prompt(models):
    """completion_only=false: a row's first token is a label, never predicted across rows."""
    check_packed_equals_unpacked(models["llama"], "sdpa", completion_only=False)


def test_packed_losses_on_smollm2(request):
    try:
        model_dir = request.getfixturevalue("smollm2_dir")
    except pytest.FixtureLookupError:
        pytest.skip("no smollm2_dir fixture (SmolLM2 not available here)")
    check_packed_equals_unpacked(model_dir, "sdpa")


# ---------------------------------------------------------------- refusals and options


def test_seq2seq_and_prompt_tuning_are_refused(models, dataset_dir, tmp_path):
    with pytest.raises(TrainerError, match="seq2seq models keep dynamic padding"):
        run_training(
            dataset_dir, "full", str(models["t5"]), tmp_path / "a", {"packing": "bfd"}, quiet=True
        )
    options = {"packing": "bfd", "max_steps": 1}
    with pytest.raises(TrainerError, match="prompt tuning"):
        run_training(
            dataset_dir, "prompt-tuning", str(models["llama"]), tmp_path / "b", options, quiet=True
        )


def test_a_model_without_packed_masks_is_refused():
    class Config:
        is_encoder_decoder = False
        _attn_implementation = "sdpa"

    class Model:  # a forward without position_ids
        config = Config()

        def forward(self, input_ids=None, labels=None):
            return None

    with pytest.raises(TrainerError, match="builds its attention mask from position ids"):
        check_packing_support(Model(), "bfd")
    check_packing_support(Model(), "none")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"packing": "bfd", "group_by_length": "true"}, "nothing to group with packing=bfd"),
        ({"packing": "bfd", "packing_length": "100"}, "packing_length=100 is shorter"),
        ({"packing": "greedy"}, "Option 'packing' must be one of none, bfd, padding_free"),
    ],
)
def test_packing_options_are_checked(values, message):
    with pytest.raises(OptionsError, match=message):
        build_options(get_trainer("full"), values)


def test_length_grouping_reads_the_length_column():
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir="unused", report_to="none")
    apply_length_grouping(args, True)
    assert args.length_column_name == "length"
    assert getattr(args, "train_sampling_strategy", "group_by_length") == "group_by_length"


# ---------------------------------------------------------------- end to end

RUN = {"max_steps": 3, "batch_size": 4, "max_source_length": 48, "max_target_length": 24, "seed": 0}


@pytest.mark.parametrize("packing", ["bfd", "padding_free"])
def test_packed_training_runs_and_is_deterministic(models, dataset_dir, tmp_path, packing):
    options = {**RUN, "packing": packing, "logging_steps": 1}
    first = run_training(
        dataset_dir, "full", str(models["llama"]), tmp_path / "a", options, quiet=True
    )
    second = run_training(
        dataset_dir, "full", str(models["llama"]), tmp_path / "b", options, quiet=True
    )
    assert first.metadata["train_loss"] == second.metadata["train_loss"]
    assert first.metadata["eval_loss"] == second.metadata["eval_loss"]
    record = first.metadata["tokenization"]
    if packing == "bfd":
        assert record["packing"]["rows"] == 24 and record["packing"]["bins"] < 24
    assert first.metadata["options"]["packing"] == packing


def test_packed_validation_loss_equals_unpacked(models, dataset_dir, tmp_path):
    """Validation rows are not packed: the same model gives the same validation loss."""
    options = {**RUN, "learning_rate": 1e-12, "lr_scheduler": "constant"}
    plain = run_training(
        dataset_dir, "full", str(models["llama"]), tmp_path / "a", options, quiet=True
    )
    packed = run_training(
        dataset_dir, "full", str(models["llama"]), tmp_path / "b", {**options, "packing": "bfd"},
        quiet=True,
    )  # fmt: skip
    assert packed.metadata["eval_loss"] == pytest.approx(plain.metadata["eval_loss"], abs=1e-4)


def test_group_by_length_runs(models, dataset_dir, tmp_path):
    options = {**RUN, "group_by_length": "true"}
    summary = run_training(
        dataset_dir, "full", str(models["gpt2"]), tmp_path / "o", options, quiet=True
    )
    assert summary.metadata["steps"] == 3


def test_default_options_do_not_pack():
    options = TrainerOptions()
    assert (options.packing, options.group_by_length, options.packing_length) == (
        "none",
        False,
        None,
    )

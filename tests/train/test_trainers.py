"""Options, registry, encoding convention, resume and determinism of the trainer layer."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

import instructkit
from instructkit.errors import OptionsError, PluginError, TrainerError, UnknownTrainerError
from instructkit.modeling import IGNORE_INDEX, encode_pair, text_ids
from instructkit.plugins import pm
from instructkit.testing import make_tiny_dataset, make_tiny_model, tiny_rows
from instructkit.train import hf as hf_training
from instructkit.train.base import (
    Trainer,
    TrainerOptions,
    TrainerRegistry,
    TrainResult,
    build_options,
    get_trainer,
    list_trainers,
    option,
    parse_option_strings,
)
from instructkit.train.hf import encode_split, make_collator
from instructkit.train.run import TrainingInterrupted, checkpoint_dir_for, run_training

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("gpt2") / "gpt2", "gpt2")


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("ds") / "data", train_rows=16)


# ---------------------------------------------------------------- options


def test_option_strings_are_converted_to_field_types():
    lora = get_trainer("lora")
    values = parse_option_strings(
        ["learning_rate=1e-3", "r=4", "merge=yes", "target_modules=q, v", "eval_steps=none"]
    )
    options = build_options(lora, values)
    assert (options.learning_rate, options.r, options.merge) == (1e-3, 4, True)
    assert options.target_modules == ["q", "v"]
    assert options.eval_steps is None


def test_yaml_typed_values_are_accepted():
    options = build_options(get_trainer("full"), {"epochs": 2, "seed": 7, "learning_rate": 1})
    assert options.epochs == 2.0 and options.seed == 7 and options.learning_rate == 1.0


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"rr": "3"}, "Unknown option 'rr'. Did you mean 'r'? See 'instructkit train --list'"),
        ({"r": "four"}, "Option 'r' must be an integer, got 'four'."),
        ({"r": 2.5}, "Option 'r' must be an integer, got 2.5."),
        ({"merge": "maybe"}, "Option 'merge' must be true or false, got 'maybe'."),
        ({"r": "0"}, "Option 'r' must be >= 1, got 0."),
        ({"precision": "fp8"}, "Option 'precision' must be one of auto, fp32, bf16, fp16"),
        ({"max_steps": "0"}, "Nothing to train: set max_steps > 0 or epochs > 0."),
        ({"dropout": "1.5"}, "Option 'dropout' must be < 1."),
    ],
)
def test_bad_options_fail_with_a_clear_message(values, message):
    with pytest.raises(OptionsError) as info:
        build_options(get_trainer("lora"), values)
    assert str(info.value).startswith(f"Backend 'lora': {message}")


def test_prompt_tuning_init_text_combinations():
    trainer = get_trainer("prompt-tuning")
    with pytest.raises(OptionsError, match="init=text needs init_text"):
        build_options(trainer, {"init": "text"})
    with pytest.raises(OptionsError, match="only used with init=text"):
        build_options(trainer, {"init_text": "Summarize:"})
    assert build_options(trainer, {"init": "text", "init_text": "Hi"}).init_text == "Hi"


def test_option_string_without_equals_is_rejected():
    with pytest.raises(OptionsError, match="'lr' is not key=value"):
        parse_option_strings(["lr"])


# ---------------------------------------------------------------- registry and hook


@dataclass
class EchoOptions(TrainerOptions):
    greeting: str = option("hello", "Text written to the output.")


class EchoTrainer(Trainer):
    """A torch-free trainer: shows the plumbing run_training gives every backend."""

    trainer_id = "echo-test"
    description = "Writes its greeting instead of training."
    Options = EchoOptions

    def train(self, run, options):
        (run.output_dir / "greeting.txt").write_text(options.greeting)
        log = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0, "eval_loss": 1.5}]
        return TrainResult(seq2seq=False, log=log, train_loss=1.0, eval_loss=1.5, steps=2)


class EchoTrainerPlugin:
    __name__ = "EchoTrainerPlugin"

    @instructkit.hookimpl
    def register_trainers(self, register):
        register(EchoTrainer)


@pytest.fixture
def echo_plugin():
    pm.register(EchoTrainerPlugin(), name="echo-trainer")
    try:
        yield
    finally:
        pm.unregister(name="echo-trainer")


def test_hook_register_trainers(echo_plugin, dataset_dir, gpt2_dir, tmp_path):
    assert get_trainer("echo-test") is EchoTrainer
    assert "echo-test" in [t.trainer_id for t in list_trainers()]
    summary = run_training(dataset_dir, "echo-test", str(gpt2_dir), tmp_path / "out", {})
    out = tmp_path / "out"
    assert (out / "greeting.txt").read_text() == "hello"
    assert summary.metadata["backend"] == "echo-test"
    assert summary.metadata["tasks"] == ["summarize", "title"]
    assert [record["step"] for record in json_lines(out)] == [1, 2]
    assert (out / "loss.png").is_file()
    assert not checkpoint_dir_for(out).exists()


def test_unknown_trainer_lists_installed():
    with pytest.raises(UnknownTrainerError) as info:
        get_trainer("lora2")
    assert str(info.value) == (
        "Unknown trainer 'lora2': installed trainers are full, lora, prompt-tuning "
        "(see 'instructkit train --list')."
    )


def test_registry_rejects_duplicates_and_non_trainers():
    registry = TrainerRegistry()
    registry.add(EchoTrainer)
    with pytest.raises(PluginError, match="registered twice"):
        registry.add(EchoTrainer)
    with pytest.raises(PluginError, match="not a subclass"):
        registry.add(dict)  # type: ignore[arg-type]


# ---------------------------------------------------------------- encoding


def test_completion_only_masks_the_prompt_token_by_token(gpt2_dir):
    from instructkit.modeling import load_tokenizer

    tokenizer = load_tokenizer(str(gpt2_dir))
    prompt, completion = "Summarize: Tom asks Anna.\nSummary:", " Tom asks."
    pair = encode_pair(tokenizer, prompt, completion, False, 64, 16)
    # nothing is inserted between prompt and completion: the separator belongs to the data
    prompt_ids = text_ids(tokenizer, prompt)
    target_ids = text_ids(tokenizer, completion)
    eos = tokenizer.eos_token_id
    assert pair.input_ids == text_ids(tokenizer, prompt + completion) + [eos]
    assert pair.input_ids == prompt_ids + target_ids + [eos]
    assert pair.labels == [IGNORE_INDEX] * len(prompt_ids) + target_ids + [eos]
    whole = encode_pair(tokenizer, prompt, completion, False, 64, 16, completion_only=False)
    assert whole.labels == whole.input_ids


def test_prompt_is_fed_to_generation_as_training_saw_it(gpt2_dir):
    from instructkit.modeling import encode_prompt, load_tokenizer

    tokenizer = load_tokenizer(str(gpt2_dir))
    prompt = "Summarize this dialogue:\n#Person1#: Hi Tom.\nSummary:\n"
    pair = encode_pair(tokenizer, prompt, "Tom is greeted.", False, 64, 16)
    generation = encode_prompt(tokenizer, prompt, False, 64)
    assert generation == text_ids(tokenizer, prompt)
    assert pair.input_ids[: len(generation)] == generation
    assert pair.labels[: len(generation)] == [IGNORE_INDEX] * len(generation)


def test_seq2seq_labels_are_the_completion(tmp_path):
    from instructkit.modeling import load_tokenizer

    tokenizer = load_tokenizer(str(make_tiny_model(tmp_path / "t5", "t5")))
    pair = encode_pair(tokenizer, "Summarize: hi", " Tom asks.", True, 64, 16)
    assert pair.labels == text_ids(tokenizer, " Tom asks.") + [tokenizer.eos_token_id]
    assert pair.input_ids == text_ids(tokenizer, "Summarize: hi") + [tokenizer.eos_token_id]


WORDS = " ".join(f"w{i}" for i in range(40))


def test_budget_cuts_the_prompt_middle_keeping_instruction_and_cue(gpt2_dir):
    from instructkit.modeling import load_tokenizer

    tokenizer = load_tokenizer(str(gpt2_dir))
    prompt = f"Summarize:\n{WORDS}\nSummary:\n"
    prompt_ids = text_ids(tokenizer, prompt)
    target = text_ids(tokenizer, " ok") + [tokenizer.eos_token_id]
    pair = encode_pair(tokenizer, prompt, " ok", False, 10, 8)
    room = 10 + 8 - len(target)
    assert pair.prompt_truncated and not pair.completion_truncated
    kept = pair.input_ids[: -len(target)]
    assert len(kept) == room < len(prompt_ids)
    # the head (the instruction) and the tail (the cue) stay; the middle of the input goes
    assert kept[: room // 2] == prompt_ids[: room // 2]
    assert kept[room // 2 :] == prompt_ids[len(prompt_ids) - (room - room // 2) :]
    assert pair.input_ids[-len(target) :] == target


def test_prompt_shorter_than_the_room_is_kept_whole(gpt2_dir):
    # the old cut kept prompt_ids[len - room:]: a negative start that dropped the beginning of
    # any prompt between half the room and the room, while reporting no truncation
    from instructkit.modeling import load_tokenizer

    tokenizer = load_tokenizer(str(gpt2_dir))
    prompt = f"Summarize:\n{WORDS}\nSummary:\n"
    prompt_ids = text_ids(tokenizer, prompt)
    pair = encode_pair(tokenizer, prompt, " ok", False, len(prompt_ids) - 2, 8)
    assert not pair.prompt_truncated
    assert pair.input_ids[: len(prompt_ids)] == prompt_ids


def test_assemble_pair_keeps_a_prompt_that_fits(gpt2_dir):
    from instructkit.modeling import assemble_pair, load_tokenizer

    tokenizer = load_tokenizer(str(gpt2_dir))
    prompt_ids = list(range(100, 130))  # 30 tokens, room 30 + 8 - 3 = 35
    pair = assemble_pair(tokenizer, prompt_ids, [7, 8], False, 30, 8, prefix=[])
    assert not pair.prompt_truncated and pair.input_ids[:30] == prompt_ids
    cut = assemble_pair(tokenizer, prompt_ids, [7, 8], False, 10, 8, prefix=[])
    assert cut.prompt_truncated and cut.input_ids[:15] == prompt_ids[:7] + prompt_ids[-8:]


def test_generation_prompt_is_cut_from_the_middle_too(gpt2_dir):
    from instructkit.modeling import encode_prompt, load_tokenizer

    tokenizer = load_tokenizer(str(gpt2_dir))
    prompt = f"Summarize:\n{WORDS}\nSummary:\n"
    prompt_ids = text_ids(tokenizer, prompt)
    assert encode_prompt(tokenizer, prompt, False, 12) == prompt_ids[:6] + prompt_ids[-6:]


def test_long_completions_are_dropped_and_counted(gpt2_dir):
    from instructkit.modeling import load_tokenizer

    tokenizer = load_tokenizer(str(gpt2_dir))
    table = tiny_rows(8)
    options = TrainerOptions(max_target_length=4)
    dropped = encode_split(tokenizer, table, False, options)
    assert dropped.dropped == dropped.truncated_completions > 0
    assert len(dropped.features) == 8 - dropped.dropped
    kept = encode_split(
        tokenizer, table, False, TrainerOptions(max_target_length=4, truncate_completions=True)
    )
    assert len(kept.features) == 8 and kept.truncated_completions == dropped.truncated_completions


def test_collator_pads_labels_with_ignore_index(gpt2_dir):
    from instructkit.modeling import load_tokenizer

    tokenizer = load_tokenizer(str(gpt2_dir))
    encoded = encode_split(tokenizer, tiny_rows(4), False, TrainerOptions())
    batch = make_collator(tokenizer, None, False)(encoded.features)
    lengths = [len(f["input_ids"]) for f in encoded.features]
    for row, length in enumerate(lengths):
        assert (batch["labels"][row, length:] == IGNORE_INDEX).all()
        assert batch["attention_mask"][row].sum() == length


def test_all_rows_over_budget_is_an_error(gpt2_dir, dataset_dir, tmp_path):
    with pytest.raises(TrainerError, match=r"All 16 train rows have completions longer than"):
        run_training(dataset_dir, "full", str(gpt2_dir), tmp_path / "o", {"max_target_length": 2})
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- determinism and resume

RESUME_OPTIONS = {
    "max_steps": 4,
    "batch_size": 4,
    "save_steps": 2,
    "logging_steps": 1,
    "learning_rate": 1e-2,
    "max_source_length": 48,
    "max_target_length": 24,
}


def adapter_weights(out):
    from safetensors.torch import load_file

    return load_file(str(out / "adapter_model.safetensors"))


def test_same_seed_same_adapter(gpt2_dir, dataset_dir, tmp_path):
    first = run_training(dataset_dir, "lora", str(gpt2_dir), tmp_path / "a", RESUME_OPTIONS)
    second = run_training(dataset_dir, "lora", str(gpt2_dir), tmp_path / "b", RESUME_OPTIONS)
    assert first.metadata["train_loss"] == second.metadata["train_loss"]
    a, b = adapter_weights(tmp_path / "a"), adapter_weights(tmp_path / "b")
    assert all((a[k] == b[k]).all() for k in a)


def test_resume_continues_from_the_checkpoint(gpt2_dir, dataset_dir, tmp_path, monkeypatch):
    import torch

    reference = run_training(dataset_dir, "lora", str(gpt2_dir), tmp_path / "ref", RESUME_OPTIONS)
    original = hf_training.final_step_callback

    interrupt_at_step(monkeypatch, 3)
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted, match=r"checkpoints kept in .* --resume"):
        run_training(dataset_dir, "lora", str(gpt2_dir), out, RESUME_OPTIONS)
    assert not out.exists() and (checkpoint_dir_for(out) / "checkpoints" / "checkpoint-2").is_dir()
    with pytest.raises(Exception, match="pass --resume to continue it or --overwrite"):
        run_training(dataset_dir, "lora", str(gpt2_dir), out, RESUME_OPTIONS)
    with pytest.raises(TrainerError, match="options.learning_rate: 0.01 -> 0.02"):
        run_training(
            dataset_dir, "lora", str(gpt2_dir), out, {**RESUME_OPTIONS, "learning_rate": 2e-2},
            resume=True,
        )  # fmt: skip
    monkeypatch.setattr(hf_training, "final_step_callback", original)
    resumed = run_training(dataset_dir, "lora", str(gpt2_dir), out, RESUME_OPTIONS, resume=True)
    assert [record["step"] for record in json_lines(out)] == [1, 2, 3, 4]
    assert resumed.metadata["steps"] == 4
    a, b = adapter_weights(tmp_path / "ref"), adapter_weights(out)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert resumed.metadata["train_loss"] == pytest.approx(
        reference.metadata["train_loss"], rel=1e-5
    )


def interrupt_at_step(monkeypatch, step):
    """Ctrl-C at the end of ``step`` (the final-step callback is replaced to do it)."""
    from transformers import TrainerCallback

    class Interrupt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == step:
                raise KeyboardInterrupt

    monkeypatch.setattr(hf_training, "final_step_callback", lambda has_eval: Interrupt())


def test_interrupt_before_the_first_checkpoint_leaves_nothing(
    gpt2_dir, dataset_dir, tmp_path, monkeypatch
):
    interrupt_at_step(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        run_training(dataset_dir, "lora", str(gpt2_dir), tmp_path / "run", RESUME_OPTIONS)
    assert list(tmp_path.iterdir()) == []


def test_resumed_full_run_does_not_warn_about_tied_weights(tmp_path, monkeypatch):
    from transformers import trainer as hf_trainer_module

    t5 = make_tiny_model(tmp_path / "t5", "t5")
    data = make_tiny_dataset(tmp_path / "data", train_rows=16)
    original = hf_training.final_step_callback
    interrupt_at_step(monkeypatch, 3)
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        run_training(data, "full", str(t5), out, RESUME_OPTIONS)
    warnings = []
    monkeypatch.setattr(hf_trainer_module.logger, "warning", lambda msg, *a: warnings.append(msg))
    monkeypatch.setattr(hf_training, "final_step_callback", original)
    run_training(data, "full", str(t5), out, RESUME_OPTIONS, resume=True)
    assert (out / "model.safetensors").is_file()
    assert not [w for w in warnings if "missing keys" in w]


def json_lines(out):
    return [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]


def test_lora_modules_to_save_trains_and_saves_the_head(gpt2_dir, dataset_dir, tmp_path):
    from instructkit.modeling import load_for_inference

    options = {**RESUME_OPTIONS, "modules_to_save": "lm_head", "save_steps": 100}
    run_training(dataset_dir, "lora", str(gpt2_dir), tmp_path / "head", options)
    saved = adapter_weights(tmp_path / "head")
    assert any("lm_head" in key for key in saved), sorted(saved)[:5]
    loaded = load_for_inference(str(tmp_path / "head"))
    base = load_for_inference(str(gpt2_dir))
    head = loaded.model.get_output_embeddings().weight
    assert not (head == base.model.get_output_embeddings().weight).all()


@pytest.mark.parametrize("backend", ["lora", "prompt-tuning"])
def test_adapters_leave_the_base_model_untouched(backend, gpt2_dir, dataset_dir, tmp_path):
    """Why removing an adapter restores every skill of the base: its files never change."""
    from instructkit.checksums import file_sha256

    before = {p.name: file_sha256(p) for p in gpt2_dir.iterdir() if p.is_file()}
    run_training(dataset_dir, backend, str(gpt2_dir), tmp_path / backend, RESUME_OPTIONS)
    after = {p.name: file_sha256(p) for p in gpt2_dir.iterdir() if p.is_file()}
    assert after == before
    assert not (tmp_path / backend / "model.safetensors").exists()  # only the adapter is saved

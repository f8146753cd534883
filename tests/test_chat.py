"""Chat templates and TRL's two row forms: the same token ids and loss mask as TRL's SFTTrainer.

Fast tests use a tiny GPT-2 tokenizer given a ChatML template; the equality tests run TRL's own
dataset preparation on the real SmolLM2-135M-Instruct tokenizer (skipped without trl or it).
"""

from __future__ import annotations

import json
import types

import pyarrow as pa
import pytest

from instructkit.chat import CONVERSATIONAL, STRING, check_form, table_form
from instructkit.errors import DatasetDirError, ModelError
from instructkit.modeling import (
    IGNORE_INDEX,
    chat_template_id,
    encode_pair,
    encode_pairs,
    encode_prompt,
    use_chat_template,
)
from instructkit.testing import make_tiny_model

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def conversation(user: str, answer: str, system: str | None = None):
    prompt = [{"role": "system", "content": system}] if system else []
    prompt.append({"role": "user", "content": user})
    return prompt, [{"role": "assistant", "content": answer}]


@pytest.fixture(scope="module")
def chat_tokenizer(tmp_path_factory):
    from instructkit.modeling import load_tokenizer

    folder = make_tiny_model(tmp_path_factory.mktemp("gpt2") / "m", "gpt2")
    tokenizer = load_tokenizer(str(folder))
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.pad_token = "<|im_end|>"  # pad == eos, as on SmolLM2
    tokenizer.chat_template = CHATML
    return tokenizer


# ---------------------------------------------------------------- choosing


def test_the_data_decides_by_default_and_on_wraps_strings(chat_tokenizer):
    assert use_chat_template(chat_tokenizer, "auto", True, False) is True
    assert use_chat_template(chat_tokenizer, "auto", False, False) is False  # as TRL
    assert use_chat_template(chat_tokenizer, "on", False, False) is True
    assert use_chat_template(chat_tokenizer, "off", False, False) is False
    with pytest.raises(ModelError, match="chat_template=off cannot encode conversational"):
        use_chat_template(chat_tokenizer, "off", True, False)
    with pytest.raises(ModelError, match="seq2seq models have none"):
        use_chat_template(chat_tokenizer, "auto", True, True)
    with pytest.raises(ModelError, match="must be one of auto, on, off"):
        use_chat_template(chat_tokenizer, "yes", False, False)
    assert chat_template_id(chat_tokenizer).startswith("sha256:")


def test_a_tokenizer_without_template_refuses_chat_rows_in_one_line(tmp_path):
    from instructkit.modeling import load_tokenizer

    plain = load_tokenizer(str(make_tiny_model(tmp_path / "m", "gpt2")))
    with pytest.raises(ModelError, match="Conversational rows need a tokenizer with a chat tem"):
        use_chat_template(plain, "auto", True, False)
    with pytest.raises(ModelError, match="chat_template=on needs a tokenizer with a chat"):
        use_chat_template(plain, "on", False, False)
    assert chat_template_id(plain) is None


# ---------------------------------------------------------------- encoding


def test_conversational_loss_covers_the_assistant_turn_and_its_end(chat_tokenizer):
    tokenizer = chat_tokenizer
    prompt, completion = conversation("Summarize: hi", "A greets.", system="Be brief.")
    pair = encode_pair(tokenizer, prompt, completion, False, 64, 32, chat=True)
    whole = tokenizer.apply_chat_template(prompt + completion, tokenize=True, return_dict=True)
    assert pair.input_ids == list(whole["input_ids"])
    learned = [t for t, label in zip(pair.input_ids, pair.labels, strict=True) if label >= 0]
    assert tokenizer.decode(learned) == "A greets.<|im_end|>\n"
    # masks are positional: the end-of-turn token is learned though it is also the pad token
    assert (
        tokenizer.eos_token_id == tokenizer.pad_token_id and pair.labels[-2] == pair.input_ids[-2]
    )
    head = pair.labels.index(learned[0])
    assert pair.labels[:head] == [IGNORE_INDEX] * head
    generation = encode_prompt(tokenizer, prompt, False, 64, chat=True)
    assert generation == pair.input_ids[:head]
    assert tokenizer.decode(generation).endswith("<|im_start|>assistant\n")


def test_chat_template_on_wraps_string_rows_as_user_and_assistant(chat_tokenizer):
    on = encode_pair(chat_tokenizer, "Summarize: hi", "A greets.", False, 64, 32, chat=True)
    wrapped = conversation("Summarize: hi", "A greets.")
    assert on == encode_pair(chat_tokenizer, *wrapped, False, 64, 32, chat=True)
    plain = encode_pair(chat_tokenizer, "Summarize: hi", "A greets.", False, 64, 32)
    assert chat_tokenizer.decode(plain.input_ids) == "Summarize: hiA greets.<|im_end|>"


def test_conversational_rows_without_chat_are_refused(chat_tokenizer):
    prompt, completion = conversation("a", "b")
    with pytest.raises(ModelError, match="mix conversational and string"):
        encode_pairs(chat_tokenizer, [prompt], [completion], False, 64, 32, chat=False)
    with pytest.raises(ModelError, match="chat_template=off cannot encode"):
        encode_prompt(chat_tokenizer, prompt, False, 64, chat=False)


# ---------------------------------------------------------------- row forms


def test_table_forms():
    strings = pa.table({"prompt": ["a"], "completion": ["b"]})
    prompt, completion = conversation("a", "b")
    chats = pa.table({"prompt": [prompt], "completion": [completion]})
    assert table_form(strings) == STRING and table_form(chats) == CONVERSATIONAL
    mixed = pa.table({"prompt": [prompt], "completion": ["b"]})
    with pytest.raises(DatasetDirError, match="mixes forms"):
        table_form(mixed, "split 'train'")
    messages = pa.table({"messages": [prompt + completion]})
    with pytest.raises(DatasetDirError, match=r"'messages' form.*prompt = messages\[:-1\]"):
        check_form(messages, "split 'train'")
    assert check_form(pa.table({"other": [1]}), "x") is None  # the caller's message covers it


def test_trl_conversational_dataset_trains_and_messages_is_one_line(runner, tmp_path):
    from datasets import Dataset, DatasetDict

    from instructkit.cli import cli

    model = make_tiny_model(tmp_path / "m", "gpt2")
    pairs = [conversation(f"say {i}", "ok") for i in range(4)]
    rows = [{"prompt": prompt, "completion": completion} for prompt, completion in pairs]
    DatasetDict({"train": Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "conv"))
    messages = [{"messages": r["prompt"] + r["completion"]} for r in rows]
    DatasetDict({"train": Dataset.from_list(messages)}).save_to_disk(str(tmp_path / "msgs"))
    args = ["--backend", "full", "--model", str(model), "-o", "max_steps=1", "--quiet"]
    result = runner.invoke(
        cli, ["train", str(tmp_path / "msgs"), "--out", str(tmp_path / "o"), *args]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert (
        result.output.startswith("Error: Split 'train' of") and "'messages' form" in result.output
    )
    # the tiny tokenizer has no chat template: refused in one line, naming the fix
    result = runner.invoke(
        cli, ["train", str(tmp_path / "conv"), "--out", str(tmp_path / "o"), *args]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert (
        result.output.strip()
        .splitlines()[-1]
        .startswith("Error: Conversational rows need a tokenizer with a chat template")
    )


# ---------------------------------------------------------------- TRL's own tokenization


STRING_ROWS = [
    ("#Person1#: Hi Ivy.\n#Person2#: Hi!\nTL;DR:", "Ivy returns the greeting."),
    ("Summarize this dialogue:\n\nA: lunch?\nB: sure\n", "They agree to lunch."),
    ("Summary: ", "Tom asks Anna"),  # tokens merge across the boundary
    ("Résumé en une phrase : ", "Ça va.<|im_end|>"),  # already ends with eos: not doubled
    ("", "just a completion"),
]
CONVERSATIONAL_ROWS = [
    conversation("Summarize: A: hi B: yo", "They greet."),
    conversation("Summarize:\nA: lunch?\nB: sure", "Lunch.", system="Answer in one sentence."),
    (  # few-shot demonstrations as earlier turns
        [
            {"role": "user", "content": "Topic of: A: rain"},
            {"role": "assistant", "content": "weather"},
            {"role": "user", "content": "Topic of: A: bus late"},
        ],
        [{"role": "assistant", "content": "transport"}],
    ),
]


def trl_prepare(tokenizer, rows, completion_only=True):
    """Input ids and labels from TRL's SFTTrainer dataset preparation, without a model."""
    trl = pytest.importorskip("trl")
    from datasets import Dataset

    config = trl.SFTConfig(
        output_dir="unused", max_length=None, report_to=[], bf16=False, use_cpu=True,
        completion_only_loss=completion_only,
    )  # fmt: skip
    trainer = types.SimpleNamespace(
        _tokenizer=tokenizer, chat_template=None, completion_only_loss=completion_only
    )
    dataset = Dataset.from_list([{"prompt": p, "completion": c} for p, c in rows])
    prepared = trl.SFTTrainer._prepare_dataset(
        trainer, dataset, tokenizer, config, False, None, "t"
    )
    return [(row["input_ids"], row["labels"]) for row in prepared]


@pytest.fixture(scope="module")
def smollm2_tokenizer(smollm2_dir):
    from instructkit.modeling import load_tokenizer

    return load_tokenizer(str(smollm2_dir))


@pytest.mark.slow
@pytest.mark.parametrize("completion_only", [True, False])
def test_string_rows_match_trl(smollm2_tokenizer, completion_only):
    expected = trl_prepare(smollm2_tokenizer, STRING_ROWS, completion_only)
    prompts, completions = zip(*STRING_ROWS, strict=True)
    ours = encode_pairs(
        smollm2_tokenizer, prompts, completions, False, 4096, 4096, completion_only, chat=False
    )
    assert [(e.input_ids, e.labels) for e in ours] == expected
    learned = smollm2_tokenizer.decode([t for t in ours[0].labels if t >= 0])
    if completion_only:
        assert learned == "Ivy returns the greeting.<|im_end|>"  # joined as is: `TL;DR:Ivy`
    else:
        assert learned.endswith("TL;DR:Ivy returns the greeting.<|im_end|>")


@pytest.mark.slow
def test_conversational_rows_match_trl(smollm2_tokenizer):
    expected = trl_prepare(smollm2_tokenizer, CONVERSATIONAL_ROWS)
    prompts, completions = zip(*CONVERSATIONAL_ROWS, strict=True)
    ours = encode_pairs(smollm2_tokenizer, prompts, completions, False, 4096, 4096, chat=True)
    assert [(e.input_ids, e.labels) for e in ours] == expected
    learned = smollm2_tokenizer.decode([t for t in ours[0].labels if t >= 0])
    assert learned == "They greet.<|im_end|>\n"


@pytest.mark.slow
def test_string_rows_with_chat_template_on_match_trl_conversational(smollm2_tokenizer):
    rows = [(p, c) for p, c in STRING_ROWS[:3]]
    expected = trl_prepare(smollm2_tokenizer, [conversation(p, c) for p, c in rows])
    ours = encode_pairs(smollm2_tokenizer, *zip(*rows, strict=True), False, 4096, 4096, chat=True)
    assert [(e.input_ids, e.labels) for e in ours] == expected


@pytest.mark.slow
def test_the_trainer_encodes_a_split_as_trl(smollm2_tokenizer):
    from instructkit.train.base import TrainerOptions
    from instructkit.train.hf import encode_split, make_collator

    prompts, completions = zip(*CONVERSATIONAL_ROWS, strict=True)
    table = pa.Table.from_pylist(
        [{"prompt": p, "completion": c} for p, c in zip(prompts, completions, strict=True)]
    )
    encoded = encode_split(smollm2_tokenizer, table, False, TrainerOptions())
    expected = trl_prepare(smollm2_tokenizer, CONVERSATIONAL_ROWS)
    assert [(f["input_ids"], f["labels"]) for f in encoded.features] == expected
    batch = make_collator(smollm2_tokenizer, None, False)(encoded.features)
    eos = smollm2_tokenizer.eos_token_id
    for row, (ids, _) in enumerate(expected):
        # the closing <|im_end|> is learned although pad == eos; padding is -100
        assert batch["labels"][row, len(ids) - 2] == eos
        assert (batch["labels"][row, len(ids) :] == IGNORE_INDEX).all()


@pytest.mark.slow
def test_the_cached_train_split_is_encoded_as_trl(smollm2_tokenizer, tmp_path):
    """Training reads its train split through the tokenization cache: same ids as TRL, both
    on the miss and on the hit; the chat decision is part of the key."""
    from instructkit.testing import make_tiny_dataset
    from instructkit.train.base import TrainerOptions
    from instructkit.train.hf import encode_cached

    prompts, completions = zip(*CONVERSATIONAL_ROWS, strict=True)
    table = pa.Table.from_pylist(
        [
            {"prompt": p, "completion": c, "task": "chat"}
            for p, c in zip(prompts, completions, strict=True)
        ]
    )
    data = make_tiny_dataset(tmp_path / "d", splits={"train": table})
    run = types.SimpleNamespace(dataset_dir=data)
    expected = trl_prepare(smollm2_tokenizer, CONVERSATIONAL_ROWS)
    options = TrainerOptions(max_source_length=4096, max_target_length=4096)
    for hit in (False, True):
        encoded = encode_cached(run, smollm2_tokenizer, False, options, "train", None)
        assert encoded.chat is True and encoded.cache["hit"] is hit
        assert [(f["input_ids"], f["labels"]) for f in encoded.features] == expected
    strings = pa.Table.from_pylist([{"prompt": p, "completion": c} for p, c in STRING_ROWS[:3]])
    data = make_tiny_dataset(tmp_path / "s", splits={"train": strings})
    run = types.SimpleNamespace(dataset_dir=data)
    keys = {}
    for mode in ("off", "on"):
        options = TrainerOptions(max_source_length=4096, max_target_length=4096, chat_template=mode)
        encoded = encode_cached(run, smollm2_tokenizer, False, options, "train", None)
        keys[mode] = encoded.cache["key"]
        rows = (
            STRING_ROWS[:3] if mode == "off" else [conversation(p, c) for p, c in STRING_ROWS[:3]]
        )
        expected = trl_prepare(smollm2_tokenizer, rows)
        assert [(f["input_ids"], f["labels"]) for f in encoded.features] == expected
    assert keys["off"] != keys["on"]


# ---------------------------------------------------------------- train and evaluate


def test_stop_tokens_are_every_eos_the_model_names(chat_tokenizer):
    from instructkit.modeling import stop_token_ids

    model = types.SimpleNamespace(generation_config=types.SimpleNamespace(eos_token_id=[7, 9]))
    assert stop_token_ids(model, chat_tokenizer) == [7, 9, chat_tokenizer.eos_token_id]
    single = types.SimpleNamespace(generation_config=types.SimpleNamespace(eos_token_id=7))
    assert stop_token_ids(single, chat_tokenizer) == [7, chat_tokenizer.eos_token_id]


PLAIN_CHAT = (
    "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + eos_token"
    " + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
)


def test_conversational_training_is_recorded_and_evaluated_through_the_template(tmp_path):
    from instructkit.evaluate.generate import GenerationOptions
    from instructkit.evaluate.run import evaluate_model
    from instructkit.modeling import load_tokenizer
    from instructkit.testing import make_tiny_dataset
    from instructkit.train.run import run_training

    model = make_tiny_model(tmp_path / "m", "gpt2")
    tokenizer = load_tokenizer(str(model))
    tokenizer.chat_template = PLAIN_CHAT  # a template of tokens the tiny vocabulary has
    tokenizer.save_pretrained(str(model))
    pairs = [conversation(f"say {i}", f"ok {i}") for i in range(6)]
    table = pa.Table.from_pylist([{"prompt": p, "completion": c, "task": "chat"} for p, c in pairs])
    data = make_tiny_dataset(tmp_path / "d", splits={"train": table, "test": table})
    out = tmp_path / "run"
    run_training(data, "full", str(model), out, {"max_steps": 1, "batch_size": 2})
    record = json.loads((out / "instructkit-train.json").read_text())
    template_id = chat_template_id(tokenizer)
    assert record["encoding"] == {"chat_template": True, "chat_template_id": template_id}
    result = evaluate_model(
        str(out), [data], "test", tmp_path / "eval", generation=GenerationOptions(max_new_tokens=4)
    )
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["model"]["chat_template_id"] == template_id
    assert metrics["generation"]["chat_template"] == "auto"
    assert [row["references"] for row in result.rows][0] == ["ok 0"]


@pytest.mark.slow
def test_evaluate_predicts_what_apply_chat_template_and_generate_give(smollm2_dir, tmp_path):
    """A served adapter (chat template + generate) and instructkit's batched generation agree."""
    import torch
    from peft import LoraConfig, get_peft_model

    from instructkit.evaluate.generate import GenerationOptions, generate
    from instructkit.modeling import load_base_model, load_for_inference, load_tokenizer

    torch.manual_seed(0)
    base = load_base_model(str(smollm2_dir), dtype=torch.float32)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    adapter = tmp_path / "adapter"
    get_peft_model(base, config).save_pretrained(str(adapter))  # random, non-zero LoRA
    load_tokenizer(str(smollm2_dir)).save_pretrained(str(adapter))
    record = {"encoding": {"chat_template": True}}
    (adapter / "instructkit-train.json").write_text(json.dumps(record))

    loaded = load_for_inference(str(adapter))
    loaded.model.float()
    assert loaded.trained_chat is True
    prompts = [
        "Summarize: #Person1#: Lunch at noon? #Person2#: Sure, see you there.",
        "What is the capital of France?",
        "Name a color.",
    ]
    ours = generate(loaded, prompts, GenerationOptions(max_new_tokens=12, batch_size=3))
    tokenizer = loaded.tokenizer
    served = []
    for prompt in prompts:
        inputs = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True,
            return_tensors="pt", return_dict=True,
        )  # fmt: skip
        with torch.inference_mode():
            output = loaded.model.generate(**inputs, max_new_tokens=12, do_sample=False)
        new = output[0, inputs["input_ids"].shape[1] :]
        served.append(tokenizer.decode(new, skip_special_tokens=True).strip())
    assert ours == served


# ---------------------------------------------------------------- rows rendered by instructkit


def rendered_rows(tmp_path, form: str, **options) -> pa.Table:
    """DialogSum-shaped rows rendered by `instructkit render` (our own tiny text)."""
    from instructkit.artifacts.dataset import open_split
    from instructkit.render.run import render_dataset

    data = tmp_path / f"train-{form}.jsonl"
    turns = ["#Person1#: Lunch at noon?", "#Person2#: Sure, by the station.", "#Person1#: Great."]
    rows = [
        {"dialogue": "\n".join(turns[: 2 + i % 2]) + f" ({i})", "summary": f"They meet {i}.",
         "topic": f"lunch {i}"}
        for i in range(4)
    ]  # fmt: skip
    data.write_text("\n".join(json.dumps(row) for row in rows))
    out = tmp_path / f"rendered-{form}"
    render_dataset(str(data), out, templates="dialogsum", form=form, assignment="all", **options)
    return open_split(out, "train")


@pytest.mark.slow
@pytest.mark.parametrize("form", ["text", "conversational"])
def test_rendered_rows_train_the_same_tokens_in_trl(smollm2_tokenizer, tmp_path, form):
    """Our rendered rows, fed to TRL's own tokenization, give the ids and labels we train."""
    from instructkit.train.base import TrainerOptions
    from instructkit.train.hf import encode_split

    options = {"system": "Be brief.", "few_shot": 1} if form == "conversational" else {}
    table = rendered_rows(tmp_path, form, **options)
    rows = list(zip(table["prompt"].to_pylist(), table["completion"].to_pylist(), strict=True))
    expected = trl_prepare(smollm2_tokenizer, rows)
    encoded = encode_split(smollm2_tokenizer, table, False, TrainerOptions(max_source_length=4096,
                           max_target_length=4096))  # fmt: skip
    assert [(f["input_ids"], f["labels"]) for f in encoded.features] == expected
    if form == "text":
        # and a plain tokenizer(prompt + completion) is the same text: the join is in the data
        for (prompt, completion), (ids, _) in zip(rows, expected, strict=True):
            assert prompt.endswith("\n")
            plain = smollm2_tokenizer(prompt + completion)["input_ids"]
            assert ids == [*plain, smollm2_tokenizer.eos_token_id]


@pytest.mark.slow
def test_lora_on_rendered_dialogsum_evaluates_as_served(
    smollm2_dir, shared_data_dir, tmp_path, one_torch_thread
):
    """Done-when of issue 13: render real DialogSum conversational, LoRA-train a few steps; the
    predictions of `instructkit evaluate` are those of apply_chat_template + generate."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from instructkit.artifacts.dataset import open_split
    from instructkit.evaluate.generate import GenerationOptions
    from instructkit.evaluate.run import evaluate_model
    from instructkit.render.run import render_dataset
    from instructkit.train.run import run_training

    data = tmp_path / "dialogsum"
    data.mkdir()
    for name in ("train", "dev", "test"):
        lines = (shared_data_dir / "dialogsum" / f"dialogsum.{name}.jsonl").read_text().split("\n")
        (data / f"dialogsum.{name}.jsonl").write_text("\n".join(lines[:8]))
    rendered = tmp_path / "chat"
    render_dataset("dialogsum", rendered, data_dir=str(data), form="conversational",
                   template_ids=["summarize_before"])  # fmt: skip
    out = tmp_path / "lora"
    options = {"max_steps": 2, "batch_size": 2, "learning_rate": 1e-3, "max_source_length": 160,
               "max_target_length": 48, "eval_steps": 0, "max_eval_samples": 2}  # fmt: skip
    run_training(rendered, "lora", str(smollm2_dir), out, options)
    generation = GenerationOptions(max_new_tokens=16, batch_size=3, max_source_length=2048)
    result = evaluate_model(str(out), [rendered], "test", tmp_path / "eval",
                            generation=generation, max_rows=3)  # fmt: skip
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["model"]["chat_template_id"] is not None

    tokenizer = AutoTokenizer.from_pretrained(str(out))
    model = AutoModelForCausalLM.from_pretrained(str(smollm2_dir), dtype=torch.float32)
    model = PeftModel.from_pretrained(model, str(out)).eval()
    test = {row["example_id"]: row for row in open_split(rendered, "test").to_pylist()}
    served = []
    for row in result.rows:
        inputs = tokenizer.apply_chat_template(
            test[row["example_id"]]["prompt"], add_generation_prompt=True,
            return_tensors="pt", return_dict=True,
        )  # fmt: skip
        with torch.inference_mode():
            output = model.generate(**inputs, max_new_tokens=16, do_sample=False)
        new = output[0, inputs["input_ids"].shape[1] :]
        served.append(tokenizer.decode(new, skip_special_tokens=True).strip())
    assert [row["prediction"] for row in result.rows] == served

"""Training at scale: HF names, live logs, per-task validation, load options, run record, launch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from instructkit.artifacts.train_output import write_log
from instructkit.cli import cli
from instructkit.errors import OptionsError
from instructkit.modeling import adapter_base_model
from instructkit.testing import make_tiny_dataset, make_tiny_model
from instructkit.train import callbacks as train_callbacks
from instructkit.train import hf as hf_training
from instructkit.train import model_loading
from instructkit.train.base import build_options, get_trainer
from instructkit.train.hf_options import hf_fields, passthrough_names, split_options
from instructkit.train.launch import CONFIG_NAMES, config_path, launch_command, shipped_configs
from instructkit.train.record import TOKENIZATION_FIELD, base_model_ref
from instructkit.train.run import plot_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    return root, make_tiny_model(root / "models" / "gpt2", "gpt2")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("engine") / "data", train_rows=16)


# ---------------------------------------------------------------- HF names, aliases


def test_every_training_arguments_field_is_known_without_importing_transformers():
    fields = hf_fields()
    for name in ("num_train_epochs", "optim", "max_grad_norm", "torch_compile", "report_to"):
        assert name in fields
    for name in ("push_to_hub", "deepspeed", "fsdp", "ddp_timeout", "lr_scheduler_kwargs"):
        assert name in passthrough_names()
    assert "output_dir" not in passthrough_names()  # instructkit owns it (--out)


def test_hf_names_pass_through_typed_as_hf_declares_them():
    options = build_options(
        get_trainer("lora"),
        {
            "optim": "adafactor", "max_grad_norm": "0.5", "torch_compile": "false",
            "ddp_timeout": "60", "report_to": "none", "lr_scheduler_kwargs": '{"min_lr": 0.1}',
            "num_train_epochs": "2", "per_device_train_batch_size": "4", "bf16": "false",
        },
    )  # fmt: skip
    assert options.training_arguments == {
        "optim": "adafactor", "max_grad_norm": 0.5, "torch_compile": False, "ddp_timeout": 60,
        "report_to": "none", "lr_scheduler_kwargs": {"min_lr": 0.1},
    }  # fmt: skip
    assert (options.epochs, options.batch_size, options.precision) == (2.0, 4, "fp32")


def test_training_arguments_carry_the_hf_fields(tmp_path):
    from instructkit.train.base import TrainRun

    options = build_options(
        get_trainer("full"), {"optim": "adafactor", "max_grad_norm": 0.25, "lr": "1e-3"}
    )
    run = TrainRun(tmp_path, "m", tmp_path / "out", tmp_path / "ck")
    args = hf_training.training_arguments(options, run, has_validation=True)
    assert (args.optim, args.max_grad_norm, args.learning_rate) == ("adafactor", 0.25, 1e-3)
    assert args.eval_steps == 0.25 and args.report_to in ("none", [], ["none"])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"lr": "1", "learning_rate": "2"}, "Options 'lr' and 'learning_rate' both set"),
        ({"bf16": "true", "precision": "fp32"}, "Options 'bf16' and 'precision' both set"),
        ({"learnig_rate": "1"}, "Unknown option 'learnig_rate'. Did you mean 'learning_rate'?"),
        ({"optimm": "x"}, "Unknown option 'optimm'. Did you mean 'optim'?"),
        ({"output_dir": "x"}, "Option 'output_dir' is set by instructkit: use --out"),
        ({"hub_token": "x"}, "Option 'hub_token' is set by instructkit"),
        ({"max_grad_norm": "abc"}, "Option 'max_grad_norm' must be a number, got 'abc'."),
        ({"torch_compile": "maybe"}, "Option 'torch_compile' must be true or false"),
    ],
)
def test_aliases_conflicts_and_suggestions(values, message):
    with pytest.raises(OptionsError) as info:
        build_options(get_trainer("lora"), values)
    assert str(info.value).startswith(f"Backend 'lora': {message}")
    assert "\n" not in str(info.value)


def test_lr_is_an_alias_and_short_keys_get_no_far_fetched_suggestion():
    assert build_options(get_trainer("lora"), {"lr": "1e-3"}).learning_rate == 1e-3
    _, extra = split_options({"optim": "sgd"}, {"r"}, passthrough=True)
    assert extra == {"optim": "sgd"}
    with pytest.raises(OptionsError) as info:
        build_options(get_trainer("lora"), {"lx": "1"})
    assert "Did you mean" not in str(info.value)


def test_non_hf_backends_refuse_hf_names():
    from instructkit.train.base import TrainerOptions

    with pytest.raises(OptionsError, match="Unknown option 'optim'"):
        TrainerOptions.from_mapping({"optim": "sgd"})
    assert TrainerOptions.from_mapping({"num_train_epochs": 2}).epochs == 2.0


def test_report_to_takes_a_list_of_installed_trackers(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    installed = {"tensorboard", "mlflow"}
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: object() if name in installed else real(name, *a),
    )
    options = build_options(get_trainer("full"), {"report_to": "tensorboard,mlflow"})
    assert options.training_arguments == {"report_to": ["tensorboard", "mlflow"]}


def test_missing_tracker_package_is_one_line(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    with pytest.raises(OptionsError, match="report_to=wandb needs the 'wandb' package"):
        build_options(get_trainer("full"), {"report_to": "wandb"})


def test_list_shows_aliases_and_hf_fields(runner):
    result = runner.invoke(cli, ["train", "--list"])
    assert result.exit_code == 0
    assert "  learning_rate (a number, default 5e-05; also lr)" in result.output
    assert "also num_train_epochs" in result.output
    assert "transformers.TrainingArguments fields, by their HF names" in result.output
    for name in ("optim", "max_grad_norm", "deepspeed", "report_to", "ddp_timeout"):
        assert f"\n  {name} (" in result.output


def test_yaml_takes_hf_names_and_flags_override_aliases(tmp_path):
    from instructkit.commands.train import load_run_config, merge_options

    config = tmp_path / "run.yaml"
    config.write_text("options:\n  num_train_epochs: 2\n  optim: adafactor\n  lr: 0.1\n")
    merged = merge_options(load_run_config(config)["options"], {"learning_rate": "0.5"})
    options = build_options(get_trainer("full"), merged)
    assert (options.epochs, options.learning_rate) == (2.0, 0.5)
    assert options.training_arguments == {"optim": "adafactor"}


def test_transformers_rejection_is_one_line(runner, data, models, tmp_path):
    _, gpt2 = models
    out = tmp_path / "o"
    args = ["train", str(data), "-b", "full", "-m", str(gpt2), "--out", str(out), "-q"]
    result = runner.invoke(cli, [*args, "-o", "optim=no_such_optimizer", "-o", "max_steps=1"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: transformers rejected the training arguments (with ")
    assert result.output.count("\n") == 1
    assert not (tmp_path / "o.checkpoints").exists()


# ---------------------------------------------------------------- one real run, many checks


@pytest.fixture(scope="module")
def trained(models, data):
    """A CLI run with HF names and aliases, watched from inside: log lines, call order."""
    from click.testing import CliRunner

    root, gpt2 = models
    out = root / "runs" / "lora"
    seen: dict[str, list] = {"lines": [], "order": []}
    real_live, real_args = train_callbacks.live_log_callback, hf_training.training_arguments
    real_load = model_loading.load_training_model

    def live(path):
        callback = real_live(path)
        step_end = getattr(callback, "on_step_end", None)

        def on_step_end(args, state, control, **kwargs):
            seen["lines"].append(len(path.read_text().splitlines()))
            return step_end(args, state, control, **kwargs) if step_end else None

        callback.on_step_end = on_step_end
        return callback

    def args_first(*a, **k):
        seen["order"].append("TrainingArguments")
        return real_args(*a, **k)

    def load(*a, **k):
        seen["order"].append("from_pretrained")
        return real_load(*a, **k)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_callbacks, "live_log_callback", live)
        patch.setattr(hf_training, "training_arguments", args_first)
        patch.setattr(model_loading, "load_training_model", load)
        args = ["train", str(data), "-b", "lora", "-m", str(gpt2), "--out", str(out)]
        args += ["-o", "max_steps=4", "-o", "bs=4", "-o", "logging_steps=1", "-o", "eval_steps=2"]
        args += ["-o", "optim=adafactor", "-o", "max_grad_norm=0.5", "-o", "dtype=fp32"]
        args += ["-o", "attn_implementation=eager"]
        result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    metadata = json.loads((out / "instructkit-train.json").read_text())
    return out, metadata, result, seen


def test_log_is_appended_while_training(trained):
    out, _, _, seen = trained
    # read as each step ends, before that step logs: step 1 adds its loss, step 2 its loss and
    # three validation records (two tasks, then the pooled loss), step 3 its loss
    assert seen["lines"] == [0, 1, 5, 6]
    final = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in final] == [1, 2, 3, 4]  # merged per step at the end


def test_plain_log_lines_when_not_on_a_terminal(trained):
    _, _, result, _ = trained
    lines = [line for line in result.stderr.splitlines() if line.startswith("[train] step")]
    assert [line.split()[2] for line in lines if " loss " in line] == ["1/4", "2/4", "3/4", "4/4"]
    evals = [line for line in lines if "eval_loss" in line]
    assert len(evals) == 2 and "eval_summarize_loss" in evals[0]  # one line per evaluation


def test_quiet_prints_no_log_lines(runner, data, models, tmp_path):
    _, gpt2 = models
    args = ["train", str(data), "-b", "full", "-m", str(gpt2), "--out", str(tmp_path / "q")]
    result = runner.invoke(cli, [*args, "-q", "-o", "max_steps=1", "-o", "logging_steps=1"])
    assert result.exit_code == 0, result.output
    assert "[train]" not in result.stderr


def test_per_task_validation_loss_and_pooled(trained):
    out, metadata, _, _ = trained
    assert metadata["validation_tasks"] == {"summarize": "summarize", "title": "title"}
    evals = [r for r in metadata_log(out) if "eval_loss" in r]
    assert [r["step"] for r in evals] == [2, 4]
    for record in evals:
        a, b = record["eval_summarize_loss"], record["eval_title_loss"]
        assert min(a, b) <= record["eval_loss"] <= max(a, b)
    assert (out / "loss.png").stat().st_size > 0


def metadata_log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]


def test_loss_chart_has_a_line_per_task(tmp_path, monkeypatch):
    import instructkit.charts as charts

    seen = {}
    monkeypatch.setattr(charts, "line_chart", lambda path, series, **kw: seen.update(series))
    log = [{"step": 1, "loss": 2.0, "eval_loss": 1.5, "eval_a_loss": 1.0, "eval_b_loss": 2.0}]
    plot_loss(tmp_path / "loss.png", log, title="t")
    assert list(seen) == ["train", "validation", "validation: a", "validation: b"]


def test_run_record(trained, models):
    out, metadata, _, seen = trained
    root, gpt2 = models
    assert set(metadata["versions"]) >= {"torch", "transformers", "peft", "accelerate", "datasets"}
    assert metadata["versions"]["torch"]
    assert isinstance(metadata["command_line"], str) and metadata["command_line"]
    assert (metadata["world_size"], metadata["effective_batch_size"]) == (1, 4)
    assert metadata["device"] == "cpu" and metadata["precision"] == "fp32"
    assert metadata["dtype"] == "float32"
    record = metadata[TOKENIZATION_FIELD]
    assert set(record) >= {"key", "hit", "seconds"} and isinstance(record["key"], str)
    assert metadata["options"]["training_arguments"] == {"optim": "adafactor", "max_grad_norm": 0.5}
    assert metadata["base_model_ref"] == {
        "relative_path": "../../models/gpt2",
        "absolute_path": str(gpt2.resolve()),
    }
    # ZeRO-3 shards at load only when TrainingArguments exist before from_pretrained
    assert seen["order"] == ["TrainingArguments", "from_pretrained"]


def test_record_is_strict_json(tmp_path):
    path = tmp_path / "log.jsonl"
    write_log(path, [{"step": 1, "loss": float("nan"), "eval_loss": float("inf")}])
    record = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(c))
    assert record == {"step": 1, "loss": None, "eval_loss": None}


def test_adapter_finds_its_base_relative_to_the_run(trained, tmp_path):
    out, _, _, _ = trained
    root = out.parent.parent
    moved = tmp_path / "elsewhere"
    shutil.copytree(root / "models", moved / "models")
    shutil.copytree(out, moved / "runs" / "lora")
    config = json.loads((moved / "runs" / "lora" / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "/gone/machine/models/gpt2"  # the other machine's path
    (moved / "runs" / "lora" / "adapter_config.json").write_text(json.dumps(config))
    found = adapter_base_model(moved / "runs" / "lora")
    assert Path(found) == (moved / "models" / "gpt2").resolve()


def test_hub_ids_are_recorded_as_given(tmp_path):
    assert base_model_ref("HuggingFaceTB/SmolLM2-135M", tmp_path) == {
        "hub_id": "HuggingFaceTB/SmolLM2-135M"
    }


# ---------------------------------------------------------------- model loading


def test_dtype_reaches_from_pretrained():
    import torch

    options = build_options(get_trainer("lora"), {"dtype": "bf16", "attn_implementation": "sdpa"})
    kwargs = model_loading.load_kwargs(options)
    assert kwargs[model_loading.dtype_keyword()] is torch.bfloat16
    assert kwargs["attn_implementation"] == "sdpa"


def test_quantized_loading_is_one_line_without_cuda(runner, data, models, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the error is for machines without it")
    _, gpt2 = models
    args = ["train", str(data), "-b", "lora", "-m", str(gpt2), "--out", str(tmp_path / "o")]
    result = runner.invoke(cli, [*args, "-o", "load_in_4bit=true"])
    assert result.exit_code == 1
    assert result.output == (
        "Error: load_in_4bit (QLoRA) needs a CUDA GPU and this machine has none: drop -o "
        "load_in_4bit=true or train on a GPU.\n"
    )
    with pytest.raises(OptionsError, match="exclude each other"):
        build_options(get_trainer("lora"), {"load_in_4bit": "1", "load_in_8bit": "1"})


# ---------------------------------------------------------------- many GPUs


def test_shipped_accelerate_configs_resolve_by_name():
    assert set(CONFIG_NAMES) <= set(shipped_configs())
    kinds = {name: yaml.safe_load(config_path(name).read_text()) for name in CONFIG_NAMES}
    assert kinds["ddp"]["distributed_type"] == "MULTI_GPU"
    assert kinds["fsdp"]["distributed_type"] == "FSDP"
    assert kinds["zero2"]["deepspeed_config"]["zero_stage"] == 2
    assert kinds["zero3"]["deepspeed_config"]["zero_stage"] == 3
    assert kinds["zero3"]["deepspeed_config"]["zero3_init_flag"] is True
    with pytest.raises(OptionsError, match="Unknown accelerate config 'zero4': use one of ddp, "):
        config_path("zero4")


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_launch_command_for_each_config(name):
    command = launch_command(name, 8, ["data", "-b", "full"], env={}, gpus=8)
    assert command[1:5] == [
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(config_path(name)),
    ]
    assert command[5:7] == ["--num_processes", "8"]
    assert command[-6:] == ["-m", "instructkit", "train", "data", "-b", "full"]


def test_launch_command_spans_machines_from_rendezvous_variables():
    env = {"NNODES": "2", "NODE_RANK": "1", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "6000"}
    command = launch_command("zero3", 4, ["data"], env=env, gpus=4)
    text = " ".join(command)
    assert "--num_processes 8 --num_machines 2 --machine_rank 1" in text
    assert "--main_process_ip 10.0.0.1 --main_process_port 6000" in text
    with pytest.raises(OptionsError, match="MASTER_ADDR is not set"):
        launch_command("zero3", 4, ["data"], env={"NNODES": "2"}, gpus=4)
    with pytest.raises(OptionsError, match="already started by a launcher"):
        launch_command("ddp", 2, ["data"], env={"LOCAL_RANK": "0"}, gpus=2)
    with pytest.raises(OptionsError, match="needs --num-processes"):
        launch_command("ddp", None, ["data"], env={}, gpus=0)
    cpu = launch_command("ddp", 2, ["data"], env={}, gpus=0)
    assert cpu[:2] == ["env", "ACCELERATE_USE_CPU=true"]


def test_print_launch_shows_the_command(runner, data, models, tmp_path):
    _, gpt2 = models
    args = ["train", str(data), "-b", "full", "-m", str(gpt2), "--out", str(tmp_path / "o")]
    result = runner.invoke(
        cli, [*args, "-o", "lr=1e-3", "--accelerate-config", "zero3", "--num-processes", "2",
              "--print-launch"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"--config_file {config_path('zero3')}" in result.output
    assert result.output.rstrip().endswith(
        f"-m instructkit train {data} --backend full --model {gpt2} --out {tmp_path / 'o'} "
        f"-o lr=1e-3"
    )

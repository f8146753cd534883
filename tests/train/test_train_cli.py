"""``instructkit train`` from the command line: runs, config precedence, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from instructkit.cli import cli
from instructkit.testing import make_tiny_dataset, make_tiny_model, tiny_rows

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_PLUGIN = REPO_ROOT / "plugins" / "instructkit-peft-extras"
FAST = ["-o", "max_steps=2", "-o", "batch_size=4", "-o", "logging_steps=1", "--quiet"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("t5") / "t5", "t5")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("cli") / "data", train_rows=8)


def test_train_writes_the_output_directory(runner, data, t5_dir, tmp_path):
    out = tmp_path / "lora"
    args = ["train", str(data), "-b", "lora", "-m", str(t5_dir), "--out", str(out), *FAST]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Trained lora on 8 rows for 2 steps in ")
    assert result.output.endswith(f": {out}\n")
    metadata = json.loads((out / "instructkit-train.json").read_text())
    assert metadata["options"]["max_steps"] == 2
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(
        t5_dir.resolve()
    )


def test_config_file_is_overridden_by_flags(runner, data, t5_dir, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(
        f"dataset: {data}\nbackend: lora\nmodel: {t5_dir}\nout: {tmp_path / 'from-config'}\n"
        f"options:\n  max_steps: 3\n  r: 4\n  learning_rate: 1e-3\n"
    )
    out = tmp_path / "from-flag"
    args = ["train", "--config", str(config), "--out", str(out), "-o", "max_steps=1", "-q"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    options = json.loads((out / "instructkit-train.json").read_text())["options"]
    assert (options["max_steps"], options["r"], options["learning_rate"]) == (1, 4, 1e-3)
    assert not (tmp_path / "from-config").exists()


def test_list_shows_backends_and_their_options(runner):
    result = runner.invoke(cli, ["train", "--list"])
    assert result.exit_code == 0
    assert "Options of every backend (-o KEY=VALUE):" in result.output
    for line in ("full: ", "lora: ", "prompt-tuning: ", "  r (an integer, default 8)"):
        assert line in result.output


def test_missing_arguments_are_a_usage_error(runner):
    result = runner.invoke(cli, ["train", "-b", "lora"])
    assert result.exit_code == 2
    assert "Missing DATASET, --model, --out (give them as arguments or in --config)." in (
        result.output
    )


def error_of(runner, args):
    result = runner.invoke(cli, ["train", *args])
    assert result.exit_code == 1, result.output
    assert result.output.count("\n") == 1, result.output
    return result.output


def test_unknown_backend(runner, data, t5_dir, tmp_path):
    output = error_of(
        runner, [str(data), "-b", "lora2", "-m", str(t5_dir), "--out", str(tmp_path / "o")]
    )
    assert output == (
        "Error: Unknown trainer 'lora2': installed trainers are full, lora, prompt-tuning "
        "(see 'instructkit train --list').\n"
    )


def test_mistyped_option(runner, data, t5_dir, tmp_path):
    args = [
        str(data),
        "-b",
        "lora",
        "-m",
        str(t5_dir),
        "--out",
        str(tmp_path / "o"),
        "-o",
        "alpah=3",
    ]
    assert "Unknown option 'alpah'. Did you mean 'alpha'?" in error_of(runner, args)


def test_missing_model_and_offline_hub(runner, data, tmp_path):
    out = str(tmp_path / "o")
    missing = error_of(runner, [str(data), "-b", "full", "-m", "./no/such/model", "--out", out])
    assert missing == "Error: Model directory './no/such/model' does not exist.\n"
    hub = error_of(runner, [str(data), "-b", "full", "-m", "google/flan-t5-small", "--out", out])
    assert "is not a local directory and the hub is offline (HF_HUB_OFFLINE=1)" in hub


def test_dataset_without_train_split_or_columns(runner, t5_dir, tmp_path):
    no_train = make_tiny_dataset(tmp_path / "no-train", splits={"test": tiny_rows(4)})
    args = ["-b", "full", "-m", str(t5_dir), "--out", str(tmp_path / "o")]
    assert "Split 'train' not found" in error_of(runner, [str(no_train), *args])
    bare = pa.table({"text": ["a", "b"]})
    no_columns = make_tiny_dataset(tmp_path / "no-cols", splits={"train": bare})
    assert "has no 'prompt', 'completion' column" in error_of(runner, [str(no_columns), *args])


def test_rows_over_budget(runner, data, t5_dir, tmp_path):
    args = [str(data), "-b", "full", "-m", str(t5_dir), "--out", str(tmp_path / "o")]
    output = error_of(runner, [*args, "-o", "max_target_length=2"])
    assert output.startswith("Error: All 8 train rows have completions longer than max_target")


def test_existing_output_is_never_clobbered(runner, data, t5_dir, tmp_path):
    out = tmp_path / "keep"
    out.mkdir()
    (out / "precious.txt").write_text("mine")
    args = [str(data), "-b", "full", "-m", str(t5_dir), "--out", str(out), *FAST]
    output = error_of(runner, args)
    assert output == f"Error: Output '{out}' already exists: pass --overwrite to replace it.\n"
    assert (out / "precious.txt").read_text() == "mine"


def test_train_help_and_list_do_not_import_torch():
    code = (
        "import sys; from click.testing import CliRunner; from instructkit.cli import cli\n"
        "for args in (['train', '--help'], ['train', '--list']):\n"
        "    assert CliRunner().invoke(cli, args).exit_code == 0\n"
        "print(','.join(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    """The example plugin installed into a throwaway target: the real entry-point path."""
    target = tmp_path_factory.mktemp("site")
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    pip += ["--disable-pip-version-check", "--target", str(target), str(EXAMPLE_PLUGIN)]
    subprocess.run(pip, check=True)
    return target


def test_plugin_trainer_trains_from_the_cli(installed_plugin, data, t5_dir, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(installed_plugin), *sys.path]))
    env["OMP_NUM_THREADS"] = "1"
    out = tmp_path / "ia3"
    args = ["train", str(data), "-b", "ia3", "-m", str(t5_dir), "--out", str(out), *FAST]
    result = subprocess.run(
        [sys.executable, "-m", "instructkit", *args], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Trained ia3 on 8 rows for 2 steps")
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["peft_type"] == "IA3"


def test_unknown_target_module_is_one_line_and_leaves_no_checkpoints(
    runner, data, t5_dir, tmp_path
):
    out = tmp_path / "x"
    args = [str(data), "-b", "lora", "-m", str(t5_dir), "--out", str(out), *FAST]
    output = error_of(runner, [*args, "-o", "target_modules=q,nonexistent"])
    assert output.startswith(
        "Error: target_modules 'nonexistent' match no module of the model (it has "
    )
    assert "q, k, v, o" in output
    assert sorted(tmp_path.iterdir()) == []
    assert runner.invoke(cli, ["train", *args]).exit_code == 0  # no --resume/--overwrite asked


def test_output_that_cannot_be_created_is_one_line(runner, data, t5_dir, tmp_path):
    (tmp_path / "ff").write_text("x")
    out = tmp_path / "ff" / "x"
    output = error_of(runner, [str(data), "-b", "lora", "-m", str(t5_dir), "--out", str(out)])
    assert output == f"Error: Cannot create output '{out}': '{tmp_path / 'ff'}' is a file.\n"


def test_overwrite_refuses_to_replace_a_file(runner, data, t5_dir, tmp_path):
    out = tmp_path / "afile"
    out.write_text("mine")
    args = [str(data), "-b", "lora", "-m", str(t5_dir), "--out", str(out), "--overwrite"]
    assert "is a file" in error_of(runner, [*args, *FAST])
    assert out.read_text() == "mine"
    assert not (tmp_path / "afile.checkpoints").exists()


def test_explicit_validation_split_must_exist(runner, data, t5_dir, tmp_path):
    args = [str(data), "-b", "lora", "-m", str(t5_dir), "--out", str(tmp_path / "o"), *FAST]
    output = error_of(runner, [*args, "-o", "validation_split=nope"])
    assert output.startswith(f"Error: validation_split 'nope' not found in '{data}': it has ")
    assert not (tmp_path / "o.checkpoints").exists()


def test_train_runs_under_accelerate_launch_with_two_cpu_processes(t5_dir, data, tmp_path):
    """Beyond one device: `--accelerate-config ddp` re-launches the command through accelerate
    with the shipped config; on CPU that is two real processes, DDP over gloo."""
    pytest.importorskip("accelerate")
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "instructkit", "train", str(data), "-b", "lora", "-m", str(t5_dir),
        "--out", str(out), *FAST, "--accelerate-config", "ddp", "--num-processes", "2",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("Trained lora on 8 rows") == 1  # rank 0 reports
    metadata = json.loads((out / "instructkit-train.json").read_text())
    assert metadata["backend"] == "lora"
    assert (metadata["world_size"], metadata["effective_batch_size"]) == (2, 8)
    assert (out / "adapter_model.safetensors").is_file()
    assert not list(tmp_path.glob("*.checkpoints"))  # both ranks agreed on one output

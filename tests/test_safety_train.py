"""Issue 12, section 3 (and 5 for train/evaluate): no success reported for broken results, strict
JSON everywhere, --resume survives a half-written checkpoint. CLI level only."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from instructkit.cli import cli

REPO_ROOT = Path(__file__).resolve().parent.parent
FAST = ["-o", "max_steps=2", "-o", "batch_size=4", "-o", "logging_steps=1", "-q"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from instructkit.testing import make_tiny_dataset, make_tiny_model

    root = tmp_path_factory.mktemp("tiny")
    return make_tiny_dataset(root / "data", train_rows=8), make_tiny_model(root / "t5", "t5")


def one_line(result, *needles: str) -> str:
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, result.output
    for needle in needles:
        assert needle in result.output, result.output
    return result.output


def train_args(tiny, out: Path, *extra: str) -> list[str]:
    data, model = tiny
    return ["train", str(data), "-b", "full", "-m", str(model), "--out", str(out), *extra]


@pytest.mark.parametrize(
    "option",
    ["learning_rate=inf", "learning_rate=nan", "epochs=inf", "epochs=nan", "weight_decay=nan",
     "warmup=inf", "learning_rate=1e999"],
)  # fmt: skip
def test_non_finite_options_are_refused(runner, tiny, tmp_path, option):
    out = tmp_path / "run"
    name = option.split("=")[0]
    one_line(runner.invoke(cli, train_args(tiny, out, "-o", option, "-q")), name, "finite")
    assert not out.exists() and not Path(f"{out}.checkpoints").exists()


def test_non_finite_options_in_a_config_file_are_refused(runner, tiny, tmp_path):
    data, model = tiny
    config = tmp_path / "run.yaml"
    config.write_text(
        f"dataset: {data}\nbackend: full\nmodel: {model}\nout: {tmp_path / 'x'}\n"
        "options:\n  learning_rate: .inf\n"
    )
    one_line(runner.invoke(cli, ["train", "--config", str(config), "-q"]), "learning_rate")


@pytest.fixture(scope="module")
def nan_model(tiny, tmp_path_factory):
    """The tiny model with NaN weights: any finite options give a NaN loss at step 1."""
    import torch
    from transformers import AutoModelForSeq2SeqLM

    _, model_dir = tiny
    target = tmp_path_factory.mktemp("nan") / "t5"
    shutil.copytree(model_dir, target)
    model = AutoModelForSeq2SeqLM.from_pretrained(target)
    with torch.no_grad():
        for param in model.parameters():
            param.fill_(float("nan"))
    model.save_pretrained(target)
    return target


def test_a_non_finite_loss_stops_training_with_an_error(runner, tiny, nan_model, tmp_path):
    data, _ = tiny
    out = tmp_path / "run"
    args = ["train", str(data), "-b", "full", "-m", str(nan_model), "--out", str(out), *FAST]
    one_line(runner.invoke(cli, args), "loss", "step 1", "learning_rate")
    assert not out.exists()
    assert not list(tmp_path.rglob("instructkit-train.json"))


def test_truncated_model_weights_are_one_line_for_train_and_evaluate(runner, tiny, tmp_path):
    data, model_dir = tiny
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    args = ["train", str(data), "-b", "full", "-m", str(broken), "--out", str(tmp_path / "o"),
            *FAST]  # fmt: skip
    one_line(runner.invoke(cli, args), str(broken))
    args = ["evaluate", str(data), "--model", str(broken), "--split", "validation",
            "--out", str(tmp_path / "e"), "--max-rows", "1", "-q"]  # fmt: skip
    one_line(runner.invoke(cli, args), str(broken))


@pytest.mark.parametrize(
    "flags", [["--temperature", "nan"], ["--temperature", "inf"], ["--top-p", "nan"],
              ["--temperature", "-1"], ["--top-p", "2"]],
)  # fmt: skip
def test_non_finite_generation_options_are_refused_before_loading(runner, tmp_path, flags):
    args = ["evaluate", str(tmp_path), "--model", "nowhere/at/all", "--out",
            str(tmp_path / "e"), "--do-sample", *flags]  # fmt: skip
    one_line(runner.invoke(cli, args), flags[0])


def test_no_json_writer_in_the_package_accepts_nan():
    """Strict JSON everywhere: every json.dump(s) call in instructkit passes allow_nan=False."""
    offenders = []
    for path in sorted((REPO_ROOT / "instructkit").rglob("*.py")):
        text = path.read_text()
        for match in re.finditer(r"json\.dumps?\(", text):
            end = _call_end(text, match.end())
            call = text[match.start() : end]
            before = text[text.rfind("\n", 0, text.rfind("\n", 0, match.start())) : match.start()]
            after = text[end : text.find("\n", end)]
            if "allow_nan=True" in call and "not written" in before + after:
                continue  # hashed or shown in a message, never written to a file
            if "allow_nan=False" not in call:
                line = text.count("\n", 0, match.start()) + 1
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{line}")
    assert offenders == []


def _call_end(text: str, start: int) -> int:
    depth = 1
    for index in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[index], 0)
        if depth == 0:
            return index
    return len(text)


def test_resume_skips_a_half_written_checkpoint(tiny, tmp_path):
    """kill -9 during a checkpoint save leaves a checkpoint without its state: resume the last
    complete one instead of failing with transformers' 'Can't find a valid checkpoint'."""
    data, model = tiny
    out = tmp_path / "run"
    args = [sys.executable, "-m", "instructkit", *train_args(tiny, out), "-o", "max_steps=40",
            "-o", "save_steps=2", "-o", "batch_size=4", "-o", "save_total_limit=5",
            "-q"]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    checkpoints = Path(f"{out}.checkpoints") / "checkpoints"
    deadline = time.monotonic() + 240
    while not any(checkpoints.glob("checkpoint-*/trainer_state.json")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and b"checkpoints kept" in stderr, stderr
    complete = max(
        int(p.parent.name.split("-")[1]) for p in checkpoints.glob("*/trainer_state.json")
    )
    half = checkpoints / f"checkpoint-{complete + 100}"
    shutil.copytree(checkpoints / f"checkpoint-{complete}", half)
    (half / "trainer_state.json").unlink()
    for weights in half.glob("*.safetensors"):
        weights.write_bytes(b"")
    resumed = subprocess.run([*args, "--resume"], capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert f"checkpoint-{complete + 100}" in resumed.stdout + resumed.stderr  # said it was skipped
    metadata = json.loads((out / "instructkit-train.json").read_text())
    assert metadata["steps"] == 40


def test_truncated_adapter_weights_are_one_line_for_evaluate(runner, tiny, tmp_path):
    data, _ = tiny
    adapter = tmp_path / "lora"
    args = ["train", str(data), "-b", "lora", "-m", str(tiny[1]), "--out", str(adapter), *FAST]
    assert runner.invoke(cli, args).exit_code == 0
    weights = adapter / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    args = ["evaluate", str(data), "--model", str(adapter), "--split", "validation",
            "--out", str(tmp_path / "e"), "--max-rows", "1", "-q"]  # fmt: skip
    one_line(runner.invoke(cli, args), str(adapter), "damaged")

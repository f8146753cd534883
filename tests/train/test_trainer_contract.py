"""Every registered trainer × every tiny architecture passes instructkit.testing's contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from instructkit.testing import (
    assert_trainer_contract,
    fixed_batch_loss,
    make_tiny_dataset,
    make_tiny_model,
)
from instructkit.train.base import get_trainer, list_trainers

# Rates that move a random-init tiny model visibly in 6 steps (FEASIBILITY.md §3).
LEARNING_RATES = {"full": 3e-3, "lora": 1e-2, "prompt-tuning": 3e-1}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-models")
    return {arch: make_tiny_model(root / arch, arch) for arch in ("t5", "gpt2", "llama")}


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("contract") / "data")


def test_builtins_are_registered():
    assert {"full", "lora", "prompt-tuning"} <= {t.trainer_id for t in list_trainers()}


@pytest.mark.parametrize("arch", ["t5", "gpt2", "llama"])
@pytest.mark.parametrize("backend", sorted(LEARNING_RATES))
def test_builtin_trainer_contract(backend, arch, tiny_models, tiny_dataset, tmp_path):
    options = {"learning_rate": LEARNING_RATES[backend]}
    metadata = assert_trainer_contract(
        get_trainer(backend), tmp_path, arch, options, tiny_models[arch], tiny_dataset
    )
    before = fixed_batch_loss(tiny_models[arch], tiny_dataset)
    assert metadata["eval_loss"] < before
    assert metadata["seq2seq"] is (arch == "t5")
    assert metadata["tasks"] == ["summarize", "title"]
    assert metadata["options"]["learning_rate"] == LEARNING_RATES[backend]


@pytest.mark.gpu
@pytest.mark.parametrize("backend", sorted(LEARNING_RATES))
def test_builtin_trainer_contract_on_gpu(backend, tiny_models, tiny_dataset, tmp_path):
    import torch

    assert torch.cuda.is_available()
    options = {"learning_rate": LEARNING_RATES[backend], "precision": "auto"}
    metadata = assert_trainer_contract(
        get_trainer(backend), tmp_path, "llama", options, tiny_models["llama"], tiny_dataset
    )
    assert metadata["eval_loss"] < fixed_batch_loss(tiny_models["llama"], tiny_dataset)


@pytest.mark.parametrize("arch", ["t5", "llama"])
def test_example_plugin_ia3_passes_the_contract(
    arch, tiny_models, tiny_dataset, tmp_path, monkeypatch
):
    # imported from its source folder; test_train_cli trains it through the real entry point
    monkeypatch.syspath_prepend(
        str(Path(__file__).parents[2] / "plugins" / "instructkit-peft-extras")
    )
    from instructkit_peft_extras import IA3Trainer

    metadata = assert_trainer_contract(
        IA3Trainer, tmp_path, arch, {"learning_rate": 3e-2}, tiny_models[arch], tiny_dataset
    )
    assert metadata["eval_loss"] < fixed_batch_loss(tiny_models[arch], tiny_dataset)

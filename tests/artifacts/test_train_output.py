"""The training record: one file name, one reader, used by train, evaluate and the contract."""

from __future__ import annotations

import pytest

from instructkit.artifacts.train_output import METADATA_NAME, read_train_metadata
from instructkit.errors import ModelError


def test_read_train_metadata(tmp_path):
    assert read_train_metadata(tmp_path) is None
    (tmp_path / METADATA_NAME).write_text('{"tasks": ["a"]}')
    assert read_train_metadata(tmp_path) == {"tasks": ["a"]}
    (tmp_path / METADATA_NAME).write_text("{")
    with pytest.raises(ModelError, match="is not valid JSON"):
        read_train_metadata(tmp_path)


def test_train_and_evaluate_share_the_record():
    from instructkit import testing
    from instructkit.train import run

    assert run.METADATA_NAME == testing.METADATA_NAME == METADATA_NAME == "instructkit-train.json"

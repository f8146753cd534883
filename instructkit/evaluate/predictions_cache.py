"""A cache of generated predictions, so `evaluate --compare` and curves never regenerate.

An entry is the list of predictions for one list of prompts, keyed by everything that decides
what generation returns:

- the model: a fingerprint of every file at the top level of the model directory (weights,
  config, generation config, tokenizer) and, for an adapter, of the adapter directory too;
- the prompts, in order (so the dataset, split and rows selected: the same rows from a
  render directory or from a mixture share an entry);
- the generation options (the seed only when sampling: greedy decoding ignores it) and the
  device kind (CPU and GPU kernels may round differently);
- the code that encodes prompts and decodes outputs (the source of ``instructkit.evaluate.generate``
  and ``instructkit.modeling``) and the torch/transformers/peft versions: changing any of them
  starts a fresh entry instead of serving predictions the new code would not produce.

**Why content hashes, not sizes and modification times.** A size+mtime key is free but not
safe: two checkpoints of one run have the same sizes, and copies (``cp -p``, ``rsync -t``,
unpacking an archive) carry the mtime over, so a stale entry could be served for other
weights. A content hash is exact, and a copy of the same weights elsewhere still hits. Hashing
costs one read of each file (about 1 GB/s), so each file's digest is memoized under its
(absolute path, inode, size, mtime in ns): an unchanged file is hashed once, ever, and a
rewritten file (new mtime) is hashed again. Hub ids are fingerprinted through their local
snapshot in the Hugging Face cache; when there is none, the model is not cached.

The cache lives in ``$INSTRUCTKIT_CACHE`` (default ``$XDG_CACHE_HOME/instructkit``, else
``~/.cache/instructkit``), under ``predictions/``. Entries are written atomically; deleting the
folder is always safe.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CACHE_ENV = "INSTRUCTKIT_CACHE"
FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    """``$INSTRUCTKIT_CACHE``, else ``$XDG_CACHE_HOME/instructkit`` or ``~/.cache/instructkit``."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "instructkit"


# ---------------------------------------------------------------- fingerprints


def file_digest(path: Path, memo_dir: Path | None) -> str:
    """sha256 of a file, memoized under (path, inode, size, mtime_ns) in ``memo_dir``."""
    stat = path.stat()
    memo = None
    if memo_dir is not None:
        ident = f"{path.resolve()}\0{stat.st_ino}\0{stat.st_size}\0{stat.st_mtime_ns}"
        memo = memo_dir / hashlib.sha256(ident.encode()).hexdigest()
        if memo.is_file():
            return memo.read_text().strip()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    value = digest.hexdigest()
    if memo is not None:
        _write_atomic(memo, value)
    return value


def directory_fingerprint(path: str | os.PathLike[str], memo_dir: Path | None) -> str:
    """A digest of every file at the top level of a model or adapter directory.

    Subdirectories are left out: a training run keeps its checkpoints in ``checkpoints/``,
    which are other models, not part of this one.
    """
    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.iterdir() if p.is_file()):
        digest.update(f"{file.name}\0{file_digest(file, memo_dir)}\n".encode())
    return digest.hexdigest()


def model_fingerprint(
    model: str, adapter: str | None = None, memo_dir: Path | None = None
) -> dict[str, str] | None:
    """Fingerprints of the model (and adapter) directories; None when one cannot be found."""
    from instructkit.modeling import adapter_base_model, is_adapter_dir

    if adapter is None and is_adapter_dir(model):
        model, adapter = adapter_base_model(model), model
    base = _local_dir(model)
    if base is None:
        return None
    found = {"model": directory_fingerprint(base, memo_dir)}
    if adapter is not None:
        adapter_dir = _local_dir(adapter)
        if adapter_dir is None:
            return None
        found["adapter"] = directory_fingerprint(adapter_dir, memo_dir)
    return found


def _local_dir(name_or_path: str) -> Path | None:
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    try:  # a hub id: its snapshot in the local Hugging Face cache, if it was downloaded
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name_or_path, local_files_only=True))
    except Exception:  # noqa: BLE001 - not downloaded, not a repo id, no huggingface_hub
        return None


def code_fingerprint() -> str:
    """The prompt-encoding and generation code, and the library versions that run it."""
    import peft
    import torch
    import transformers

    from instructkit import modeling
    from instructkit.evaluate import generate

    digest = hashlib.sha256()
    for module in (generate, modeling):
        digest.update(inspect.getsource(module).encode())
    for library in (torch, transformers, peft):
        digest.update(f"{library.__name__}={library.__version__}\n".encode())
    return digest.hexdigest()


def prompts_digest(prompts: Sequence[Any]) -> str:
    """A digest of the prompts in order: strings, or conversational message lists."""
    digest = hashlib.sha256()
    for prompt in prompts:
        text = (
            prompt
            if isinstance(prompt, str)
            else json.dumps(prompt, sort_keys=True, allow_nan=False)
        )
        kind = b"s" if isinstance(prompt, str) else b"j"  # a string never equals a message list
        encoded = text.encode("utf-8")
        digest.update(kind + len(encoded).to_bytes(8, "little") + encoded)
    return digest.hexdigest()


# ---------------------------------------------------------------- the cache


@dataclass
class CacheLookup:
    """The key of one generation request and, on a hit, the predictions stored under it."""

    key: str | None  # None: this model cannot be cached (e.g. a hub id never downloaded)
    predictions: list[str] | None = None
    model_info: dict[str, Any] | None = None

    @property
    def hit(self) -> bool:
        return self.predictions is not None


class PredictionCache:
    """Predictions on disk under ``root/predictions/<key>.json`` (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    @property
    def entries(self) -> Path:
        return self.root / "predictions"

    @property
    def memo_dir(self) -> Path:
        return self.root / "file-digests"

    def request_key(
        self,
        model: str,
        adapter: str | None,
        prompts: Sequence[Any],
        generation: dict[str, Any],
        device: str,
    ) -> str | None:
        """The key of generating ``prompts`` with this model and these options (None: uncached)."""
        self.memo_dir.mkdir(parents=True, exist_ok=True)
        fingerprint = model_fingerprint(model, adapter, self.memo_dir)
        if fingerprint is None:
            return None
        options = dict(generation)
        if not options.get("do_sample"):
            options.pop("seed", None)  # greedy and beam search do not depend on it
        request = {
            "format": FORMAT_VERSION,
            "model": fingerprint,
            "prompts": prompts_digest(prompts),
            "num_prompts": len(prompts),
            "generation": options,
            "device": device,
            "code": code_fingerprint(),
        }
        return hashlib.sha256(
            json.dumps(request, sort_keys=True, allow_nan=False).encode()
        ).hexdigest()

    def lookup(
        self,
        model: str,
        adapter: str | None,
        prompts: Sequence[Any],
        generation: dict[str, Any],
        device: str,
    ) -> CacheLookup:
        key = self.request_key(model, adapter, prompts, generation, device)
        if key is None:
            return CacheLookup(None)
        path = self.entries / f"{key}.json"
        if not path.is_file():
            return CacheLookup(key)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            predictions = list(entry["predictions"])
        except (ValueError, KeyError, TypeError):
            return CacheLookup(key)  # a damaged entry is regenerated and overwritten
        if len(predictions) != len(prompts):
            return CacheLookup(key)
        return CacheLookup(key, predictions, entry.get("model_info"))

    def store(
        self, key: str, predictions: Sequence[str], model_info: dict[str, Any] | None = None
    ) -> Path:
        path = self.entries / f"{key}.json"
        entry = {"format": FORMAT_VERSION, "predictions": list(predictions)}
        if model_info is not None:
            entry["model_info"] = model_info
        _write_atomic(path, json.dumps(entry, ensure_ascii=False, allow_nan=False))
        return path


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)

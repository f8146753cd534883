"""The sha256 of files, as manifests record them: one reader for every file instructkit hashes
whole (inputs, exported shards, downloaded models). Shards being written are hashed as they are
written instead (:mod:`instructkit.artifacts.dataset`)."""

from __future__ import annotations

import hashlib
import os
from typing import Any

BLOCK_BYTES = 1 << 20


def hash_file(path: str | os.PathLike[str], digest: Any) -> None:
    """Feed every byte of ``path`` to ``digest`` (a hashlib object), a block at a time."""
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK_BYTES), b""):
            digest.update(block)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The hex sha256 of the file at ``path``."""
    digest = hashlib.sha256()
    hash_file(path, digest)
    return digest.hexdigest()

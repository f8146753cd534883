"""What ``--out`` may be, and what ``--overwrite`` may replace: pure checks on paths.

The rule (docs/cli.md, "What --overwrite replaces"):

- an output equal to, inside, or containing any of the command's inputs is refused, with or
  without ``--overwrite``, before any work;
- ``--overwrite`` replaces only an empty folder, or a folder instructkit wrote for the same kind
  of output (recognised by the record it writes there: the dataset manifest's ``kind``,
  ``instructkit-train.json``, ...); anything else is a one-line error naming the folder and
  what is in it.

Also here: the names of our own temporary folders (``.OUT.tmp-PID-HEX``), so a later run can
remove those that a killed run left behind, and never those of a run still going.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from instructkit.errors import OutputError, OutputExistsError

# kind -> (what it is called in messages, how to recognise a folder of that kind)
Recogniser = Callable[[Path], bool]


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _manifest_kind(kind: str) -> Recogniser:
    def recognise(folder: Path) -> bool:
        manifest = _json(folder / "instructkit.json")
        return isinstance(manifest, dict) and manifest.get("kind") == kind

    return recognise


def _record_kind(name: str, kind: str | None = None) -> Recogniser:
    def recognise(folder: Path) -> bool:
        record = _json(folder / name)
        return isinstance(record, dict) and (kind is None or record.get("kind") == kind)

    return recognise


def _evaluation(folder: Path) -> bool:
    metrics = _json(folder / "metrics.json")
    return (
        isinstance(metrics, dict)
        and {"model", "split", "scoring"} <= set(metrics)
        and (folder / "predictions.jsonl").is_file()
    )


def _pretrained(folder: Path) -> bool:
    record = _json(folder / MODEL_RECORD)
    return isinstance(record, dict) and "gguf_sha256" in record


def _comparison(folder: Path) -> bool:
    report = _json(folder / "report.json")
    return isinstance(report, dict) and {"split", "models"} <= set(report)


def _imported_pack(folder: Path) -> bool:
    try:
        text = (folder / "pack.yaml").read_text(encoding="utf-8")
    except OSError:
        return False
    return text.startswith(IMPORTED_PACK_MARK)


def _dataset(folder: Path) -> bool:
    return (folder / "dataset_dict.json").is_file() and isinstance(
        _json(folder / "instructkit.json"), dict
    )


IMPORTED_PACK_MARK = "# Imported by 'instructkit templates import'"
MODEL_RECORD = "instructkit-model.json"

KINDS: dict[str, tuple[str, Recogniser]] = {
    "render": ("a rendered dataset ('instructkit render')", _manifest_kind("render")),
    "mix": ("a mixture ('instructkit mix')", _manifest_kind("mix")),
    "pack": ("an imported pack ('instructkit templates import')", _imported_pack),
    "train": ("a training output ('instructkit train')", _record_kind("instructkit-train.json")),
    "tiny-model": (
        "a tiny model ('instructkit tiny-model')",
        _record_kind(MODEL_RECORD, "tiny-model"),
    ),
    "pretrained": ("a pretrained model ('instructkit models get')", _pretrained),
    "evaluate": ("an evaluation ('instructkit evaluate')", _evaluation),
    "compare": ("a comparison ('instructkit evaluate --compare')", _comparison),
    "demo": ("a demo output ('instructkit demo')", _record_kind("demo.json")),
    "export": ("an export ('instructkit export')", _manifest_kind("export")),
    # any dataset directory with our manifest (library callers that name no kind)
    "dataset": ("an instructkit dataset", _dataset),
}


def kind_of(folder: str | os.PathLike[str]) -> str | None:
    """The kind of instructkit output ``folder`` holds, or None (not ours, or not a folder)."""
    path = Path(folder)
    if not path.is_dir():
        return None
    for kind, (_, recognise) in KINDS.items():
        if recognise(path):
            return kind
    return None


def describe_contents(folder: Path, limit: int = 3) -> str:
    """'a.txt, b/ and 4 more' for a message (hidden entries included: they are data too)."""
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    except OSError as ex:
        return f"unreadable ({ex.strerror or ex})"
    if not names:
        return "nothing"
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def check_replaceable(target: Path, kind: str | None) -> None:
    """Raise unless ``--overwrite`` may replace ``target`` (empty, or ours of ``kind``)."""
    if target.is_symlink() or not target.is_dir():
        raise OutputError(f"Output '{target}' is a file: remove it or choose another path.")
    if not any(target.iterdir()):
        return
    found = kind_of(target)
    if found is not None and (kind is None or found == kind):
        return
    wanted = KINDS[kind][0] if kind in KINDS else "an instructkit output"
    what = f"it is {KINDS[found][0]}" if found else f"it holds {describe_contents(target)}"
    raise OutputError(
        f"Refusing to replace '{target}' with --overwrite: {what}, not {wanted}. "
        f"--overwrite only replaces an empty folder or one instructkit wrote for the same "
        f"command; move it away or choose another --out."
    )


def check_output(
    out: str | os.PathLike[str],
    overwrite: bool,
    kind: str | None = None,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
) -> Path:
    """All checks on an output folder before any work: overlap with inputs, then existence."""
    target = Path(out)
    check_not_an_input(target, inputs)
    if target.is_symlink():
        raise OutputError(f"Output '{target}' is a link: give the real folder, or another path.")
    if target.exists():
        if not target.is_dir():
            raise OutputError(f"Output '{target}' is a file: remove it or choose another path.")
        if not overwrite:
            raise OutputExistsError(
                f"Output '{target}' already exists: pass --overwrite to replace it."
            )
        check_replaceable(target, kind)
    return target


def check_not_an_input(
    out: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None]
) -> None:
    """Refuse an output that is, holds or lies inside one of the inputs (local paths only)."""
    target = _resolved(out)
    for given in inputs:
        if not given or not os.path.lexists(given):
            continue  # a hub name, or an optional input not given
        source = _resolved(given)
        if target == source:
            relation = "is"
        elif source in target.parents:
            relation = "is inside"
        elif target in source.parents:
            relation = "contains"
        else:
            continue
        raise OutputError(
            f"Output '{out}' {relation} the input '{given}': writing there could destroy or "
            f"mix into the input. Choose an --out outside every input."
        )


def _resolved(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path)))).resolve()


# ---------------------------------------------------------------- temporary folders

_OURS = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?:(?P<pid>\d+)-)?(?P<hex>[0-9a-f]{8})$")
LEGACY_STALE_SECONDS = 3600  # names without a pid (older versions): stale after an hour


def temp_sibling(target: Path, label: str = "tmp") -> Path:
    """``.NAME.tmp-PID-HEX`` beside ``target``: the pid tells later runs whether it is stale."""
    return target.parent / f".{target.name}.{label}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def remove_stale_temp_dirs(target: Path) -> list[Path]:
    """Remove our temp folders for ``target`` left by runs that are no longer alive."""
    removed: list[Path] = []
    try:
        siblings = list(target.parent.glob(f".{glob_escape(target.name)}.*-*"))
    except OSError:
        return removed
    for path in siblings:
        match = _OURS.match(path.name)
        if match is None or match["name"] != target.name or not path.is_dir():
            continue
        if match["pid"] is not None:
            stale = not _alive(int(match["pid"]))
        else:
            try:
                stale = time.time() - path.stat().st_mtime > LEGACY_STALE_SECONDS
            except OSError:
                continue
        if stale:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def absolute_target(out: str | os.PathLike[str]) -> Path:
    """``out`` made absolute without resolving links: '.' gets a real name and parent."""
    return Path(os.path.abspath(os.fspath(out)))


def rename_no_replace(tmp: Path, target: Path) -> None:
    """Move ``tmp`` to ``target``, failing if something appeared at ``target`` meanwhile.

    ``rename(2)`` silently replaces an empty directory, so on Linux ``renameat2`` with
    RENAME_NOREPLACE makes the check and the move one step; elsewhere a check comes first.
    """
    if _renameat2_noreplace(tmp, target):
        return
    if target.exists() or target.is_symlink():
        _appeared(target)
    os.rename(tmp, target)


def _renameat2_noreplace(tmp: Path, target: Path) -> bool:
    """True when renamed; False when renameat2 is unavailable; raises when target exists."""
    import ctypes
    import errno

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_noreplace = -100, 1
    result = renameat2(at_fdcwd, os.fsencode(tmp), at_fdcwd, os.fsencode(target), rename_noreplace)
    if result == 0:
        return True
    err = ctypes.get_errno()
    if err == errno.EEXIST:
        _appeared(target)
    if err in (errno.ENOSYS, errno.EINVAL):
        return False  # an old kernel, or a file system without the flag
    raise OSError(err, os.strerror(err), str(target))


def _appeared(target: Path) -> None:
    raise OutputError(
        f"Output '{target}' appeared while this run was writing (another run?): it was left "
        f"as it is and nothing was written. Choose another --out, or rerun with --overwrite."
    )

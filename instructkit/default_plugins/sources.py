"""Built-in plugin: the ``samsum`` and ``dialogsum`` presets (registered like a plugin's)."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa

from instructkit.errors import SourceError
from instructkit.hookspecs import hookimpl
from instructkit.render.sources import RawDataset, RawSplit, Source, from_files, from_hub


class LayoutPreset(Source):
    """A dataset whose official file names and hub copy are known."""

    hub_id = ""
    key_column = ""
    hub_key_column = ""
    # canonical split -> file names to look for in --data-dir, first match wins
    files: dict[str, tuple[str, ...]] = {}

    def load(self, data_dir: str | None = None, revision: str | None = None) -> RawDataset:
        """Read the official files from ``data_dir``, else the hub copy."""
        if data_dir is None:
            names = ", ".join(names[0] for names in self.files.values())
            hint = f"pass --data-dir DIR with the official files ({names})"
            key = self.hub_key_column or self.key_column
            dataset = from_hub(self.hub_id, revision, key, local_hint=hint)
            self.adapt_hub(dataset)
        else:
            dataset = from_files(self.find_files(Path(data_dir)), self.name, self.key_column)
        for split in dataset.splits.values():
            self.adapt(split)
        return dataset

    def find_files(self, data_dir: Path) -> dict[str, Path]:
        """The split files present in ``data_dir`` (a missing split is simply absent)."""
        if not data_dir.is_dir():
            raise SourceError(f"--data-dir '{data_dir}' is not a directory.")
        found = {}
        for split, names in self.files.items():
            path = next((data_dir / n for n in names if (data_dir / n).is_file()), None)
            if path is not None:
                found[split] = path
        if not found:
            expected = ", ".join(names[0] for names in self.files.values())
            raise SourceError(f"No {self.name} files in '{data_dir}': expected {expected}.")
        return found

    def adapt_hub(self, dataset: RawDataset) -> None:
        """Bring the hub copy's layout to the official one (nothing by default)."""

    def adapt(self, split: RawSplit) -> None:
        """Name the fields of a split for the pack (nothing by default)."""


class SamsumPreset(LayoutPreset):
    name = "samsum"
    description = "SAMSum messenger dialogues with one summary each (Gliwa et al., 2019)."
    hub_id = "knkarthick/samsum"
    key_column = "id"
    files = {
        "train": ("train.json", "train.jsonl"),
        "validation": ("val.json", "validation.json", "validation.jsonl", "val.jsonl"),
        "test": ("test.json", "test.jsonl"),
    }


class DialogsumPreset(LayoutPreset):
    name = "dialogsum"
    description = (
        "DialogSum spoken dialogues with a summary and a topic; test has three of each "
        "(Chen et al., 2021)."
    )
    hub_id = "knkarthick/dialogsum"
    key_column = "fname"
    hub_key_column = "id"
    files = {
        "train": ("dialogsum.train.jsonl", "train.jsonl"),
        "validation": ("dialogsum.dev.jsonl", "dialogsum.validation.jsonl", "dev.jsonl",
                       "validation.jsonl"),
        "test": ("dialogsum.test.jsonl", "test.jsonl"),
    }  # fmt: skip

    def adapt(self, split: RawSplit) -> None:
        """Test rows carry summary1..3/topic1..3: the first feeds templates, all are references."""
        columns = split.column_names
        for name in ("summary", "topic"):
            variants = [f"{name}{i}" for i in range(1, 10) if f"{name}{i}" in columns]
            if variants and name not in columns:
                split.aliases[name] = variants[0]
                split.references[name] = variants

    def adapt_hub(self, dataset: RawDataset) -> None:
        """The hub copy repeats each test dialogue once per summary: fold them into one row."""
        test = dataset.splits.get("test")
        if test is not None and test.table is not None and "id" in test.table.column_names:
            test.table = fold_repeated_rows(test.table, "id", ("summary", "topic"))


_REPEAT_SUFFIX = re.compile(r"^(.*)_(\d+)$")


def fold_repeated_rows(table: pa.Table, key: str, varying: tuple[str, ...]) -> pa.Table:
    """Rows keyed 'X_1', 'X_2', ... become one row 'X' with summary1, summary2, ..."""
    groups: dict[str, list[dict]] = {}
    for row in table.to_pylist():
        match = _REPEAT_SUFFIX.match(str(row[key]))
        if match is None:
            return table  # not the repeated layout: leave it as it is
        groups.setdefault(match.group(1), []).append(row)
    folded = []
    for group_key, rows in groups.items():
        merged = {k: v for k, v in rows[0].items() if k not in varying}
        if any({k: v for k, v in r.items() if k not in varying and k != key} !=
               {k: v for k, v in merged.items() if k != key} for r in rows[1:]):  # fmt: skip
            return table  # 'test_0', 'test_1' are distinct dialogues, not repeats of one
        merged[key] = group_key
        for index, row in enumerate(rows, start=1):
            for name in varying:
                if name in row:
                    merged[f"{name}{index}"] = row[name]
        folded.append(merged)
    return pa.Table.from_pylist(folded)


@hookimpl
def register_sources(register):
    register(SamsumPreset())
    register(DialogsumPreset())

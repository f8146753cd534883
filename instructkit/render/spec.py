"""The render spec: many render tasks (sources x packs) in one command and one process.

A FLAN-style build renders tens or hundreds of small tasks; one process per task pays the
start-up (interpreter, imports, plugins) every time. A spec lists the tasks, each written
exactly as ``instructkit render SOURCE --out OUT [options]`` would write it (same directory,
same manifest, same bytes: each task goes through :func:`render_dataset` with the same options)::

    defaults:                 # any render option, for every task (a task's own value wins)
      assignment: all
      splits: [train]
    tasks:
      - {source: dialogsum, data-dir: data/dialogsum, out: build/dialogsum}
      - {source: dialogsum_topic, data-dir: data/dialogsum, out: build/topic, seed: 1}
      - source: my.jsonl
        templates: samsum
        out: build/mine

Keys are the long CLI option names, with dashes or underscores (``data-dir``, ``template``
for ``--template``, ``data-file`` as a mapping of split to path). Paths are used as written,
relative to the working directory like on the command line, so the manifests match those of
separate runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instructkit.artifacts.dataset import check_output_path
from instructkit.errors import OptionsError
from instructkit.render.run import RenderOptions, RenderResult, render_dataset, render_inputs

# CLI names that differ from the RenderOptions field names
_ALIASES = {"template": "template_ids", "data_file": "data_files", "key": "key_column"}
_RUN_ONLY = {"overwrite", "quiet", "num_proc", "batch_size"}
_LISTS = {"splits", "template_ids"}


@dataclass
class RenderTask:
    """One task of a spec: what ``instructkit render SOURCE --out OUT ...`` would get."""

    source: str
    out: str
    options: RenderOptions


def load_render_spec(spec: str | Path | Mapping[str, Any], **run: Any) -> list[RenderTask]:
    """Read a spec (a YAML file or the parsed mapping) into tasks; ``run`` sets how to run
    (overwrite, quiet, num_proc) for every task."""
    data = _load(spec)
    defaults = _options(data.get("defaults") or {}, "defaults")
    tasks = data.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise OptionsError("The render spec needs 'tasks': a list of {source, out, options}.")
    parsed: list[RenderTask] = []
    for index, entry in enumerate(tasks):
        where = f"tasks[{index}]"
        if not isinstance(entry, Mapping):
            raise OptionsError(f"Render spec {where} is not a mapping of source, out and options.")
        entry = dict(entry)
        source, out = entry.pop("source", None), entry.pop("out", None)
        if not source or not out:
            raise OptionsError(f"Render spec {where} needs both 'source' and 'out'.")
        fields = {**defaults, **_options(entry, where), **run}
        try:
            options = RenderOptions(**fields)
        except TypeError as ex:  # pragma: no cover - _options checks the names first
            raise OptionsError(f"Render spec {where}: {ex}.") from ex
        parsed.append(RenderTask(str(source), str(out), options))
    outs = [str(Path(t.out).resolve()) for t in parsed]
    for out in outs:
        if outs.count(out) > 1:
            raise OptionsError(f"Two tasks of the render spec write to '{out}': give each its own.")
    return parsed


def _load(spec: str | Path | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(spec, Mapping):
        return spec
    import yaml

    path = Path(spec)
    if not path.is_file():
        raise OptionsError(f"Render spec '{path}' does not exist.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as ex:
        raise OptionsError(f"Render spec '{path}' is not valid YAML: {ex}.") from ex
    if isinstance(data, list):
        data = {"tasks": data}
    if not isinstance(data, Mapping):
        raise OptionsError(f"Render spec '{path}' must be a mapping with 'tasks' (or a list).")
    return data


def _options(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    known = {f.name for f in dataclasses.fields(RenderOptions)} - _RUN_ONLY
    options: dict[str, Any] = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        name = _ALIASES.get(name, name)
        if name not in known:
            names = ", ".join(sorted(n.replace("_", "-") for n in known))
            raise OptionsError(f"Render spec {where}: unknown option '{key}' (known: {names}).")
        if name in _LISTS and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if name == "split_ratios" and isinstance(value, str):
            value = [float(v) for v in value.split(",")]
        options[name] = value
    return options


def render_spec(
    tasks: list[RenderTask], on_done: Callable[[RenderResult], None] | None = None
) -> list[RenderResult]:
    """Render every task in this process, in order; every output is checked before any."""
    for task in tasks:
        check_output_path(
            Path(task.out),
            task.options.overwrite,
            "render",
            render_inputs(task.source, task.options),
        )
    results = []
    for task in tasks:
        result = render_dataset(task.source, task.out, task.options)
        results.append(result)
        if on_done is not None:
            on_done(result)
    return results

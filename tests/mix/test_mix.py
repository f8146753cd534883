"""instructkit mix: exact quotas, low-discrepancy interleaving, reproducibility, hygiene."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from instructkit.artifacts import dataset as artifact
from instructkit.artifacts.manifest import MANIFEST_NAME, read_manifest, write_manifest
from instructkit.cli import cli
from instructkit.errors import MixError
from instructkit.mix.quotas import largest_remainder
from instructkit.mix.run import mix_datasets
from instructkit.mix.spec import load_mix_spec


def write_rendered(
    root: Path,
    task: str,
    train: int,
    validation: int = 4,
    test: int = 3,
    texts: list[str] | None = None,
    metrics: tuple[str, ...] = ("rouge",),
) -> Path:
    """A small dataset directory laid out the way `instructkit render` writes one."""
    out = root / task
    with artifact.atomic_output_dir(out) as tmp:
        splits = {"train": train, "validation": validation, "test": test}
        for split, n in splits.items():
            prompts = [f"Summarize {task} {split} dialogue number {i}." for i in range(n)]
            if split == "train" and texts:
                prompts[: len(texts)] = texts
            artifact.write_split(tmp, split, [_rows(task, split, prompts)])
        artifact.write_dataset_dict(tmp, splits)
        write_manifest(tmp, {"kind": "render", "task": task, "metrics": list(metrics)})
    return out


def _rows(task: str, split: str, prompts: list[str]) -> pa.Table:
    n = len(prompts)
    return pa.table(
        {
            "prompt": prompts,
            "completion": [f"summary {task} {split} {i}" for i in range(n)],
            "references": [[f"summary {task} {split} {i}"] for i in range(n)],
            "task": [task] * n,
            "template_id": ["t0"] * n,
            "example_id": [f"{task}-{split}-{i}" for i in range(n)],
            "source_split": [split] * n,
            "source_index": list(range(n)),
        },
        schema=artifact.SCHEMA,
    )


def assert_prefixes_within_one(task_column: list[str], quotas: dict[str, int]) -> None:
    total = sum(quotas.values())
    positions = np.arange(1, len(task_column) + 1)
    column = np.array(task_column)
    for task, quota in quotas.items():
        running = np.cumsum(column == task)
        assert np.abs(running - positions * quota / total).max() <= 1 + 1e-9, task


@pytest.fixture
def two_tasks(tmp_path):
    return write_rendered(tmp_path, "alpha", 90), write_rendered(tmp_path, "beta", 40)


def spec_for(*paths, **keys):
    return load_mix_spec({"tasks": [dict(path=str(p), **k) for p, k in paths], **keys})


# ---------------------------------------------------------------- quotas and schedule


def test_weights_give_exact_quotas_and_every_prefix_within_one_row(tmp_path, two_tasks):
    alpha, beta = two_tasks
    spec = spec_for((alpha, {"weight": 3}), (beta, {"weight": 1}), total=200)
    result = mix_datasets(spec, tmp_path / "mix")
    train = artifact.open_split(tmp_path / "mix", "train")
    counts = Counter(train["task"].to_pylist())
    assert counts == {"alpha": 150, "beta": 50}
    assert_prefixes_within_one(train["task"].to_pylist(), {"alpha": 150, "beta": 50})
    manifest = read_manifest(tmp_path / "mix")
    assert manifest["kind"] == "mix"
    assert manifest["counts"]["train"] == {"alpha": 150, "beta": 50}
    assert [t["target_share"] for t in manifest["tasks"]] == [0.75, 0.25]
    assert manifest["metrics"] == {"alpha": ["rouge"], "beta": ["rouge"]}
    assert manifest["prefix_deviation"]["max"] <= 1
    assert result.splits == {"train": 200, "validation": 8, "test": 6}


def test_validation_and_test_stay_per_task_in_spec_order(tmp_path, two_tasks):
    alpha, beta = two_tasks
    spec = spec_for((beta, {}), (alpha, {"name": "renamed"}), total=10, eval_cap=2)
    mix_datasets(spec, tmp_path / "mix")
    validation = artifact.open_split(tmp_path / "mix", "validation")
    assert validation["task"].to_pylist() == ["beta", "beta", "renamed", "renamed"]
    assert validation["example_id"].to_pylist()[2] == "alpha-validation-0"


@pytest.mark.parametrize("seed", range(20))
def test_largest_remainder_sums_exactly(seed):
    rng = np.random.default_rng(seed)
    amounts = rng.random(rng.integers(1, 9)) * 1000
    total = round(amounts.sum())
    rounded = largest_remainder(list(amounts), total)
    assert sum(rounded) == total
    assert all(abs(r - a) < 1 for r, a in zip(rounded, amounts, strict=True))


@pytest.mark.parametrize("seed", range(25))
def test_schedule_keeps_every_prefix_within_one_row(seed):
    from instructkit.mix.quotas import _deadline_chunks, schedule_chunks

    rng = np.random.default_rng(seed)
    quotas = [int(q) for q in rng.integers(1, 80, rng.integers(2, 8))]
    quotas[0] *= int(rng.integers(1, 6))  # one dominant task is the hard case
    for chunks in (schedule_chunks(quotas, 37), _deadline_chunks(quotas, 37)):
        order = np.concatenate(list(chunks))
        names = [f"t{i}" for i in order]
        assert Counter(names) == {f"t{i}": q for i, q in enumerate(quotas)}
        assert_prefixes_within_one(names, {f"t{i}": q for i, q in enumerate(quotas)})


def test_proportional_with_cap_follows_flan_rates(tmp_path, two_tasks):
    alpha, beta = two_tasks
    spec = spec_for((alpha, {}), (beta, {}), strategy="proportional", cap=50)
    result = mix_datasets(spec, None, dry_run=True)
    # rate = min(size, cap); the derived total is the sum of the rates
    assert [t.quota for t in result.tasks] == [min(90, 50), min(40, 50)]
    spec = spec_for((alpha, {}), (beta, {}), strategy="proportional", cap=50, total=1000)
    quotas = [t.quota for t in mix_datasets(spec, None, dry_run=True).tasks]
    assert quotas == largest_remainder([1000 * 50 / 90, 1000 * 40 / 90], 1000)


def test_temperature_shares_follow_size_to_the_one_over_t(tmp_path, two_tasks):
    alpha, beta = two_tasks
    spec = spec_for((alpha, {}), (beta, {}), strategy="temperature", temperature=2.0, total=300)
    quotas = [t.quota for t in mix_datasets(spec, tmp_path / "mix").tasks]
    rates = [90**0.5, 40**0.5]
    assert quotas == largest_remainder([300 * r / sum(rates) for r in rates], 300)
    train = artifact.open_split(tmp_path / "mix", "train")["task"].to_pylist()
    assert_prefixes_within_one(train, {"alpha": quotas[0], "beta": quotas[1]})


def test_count_and_epochs_are_fixed_and_weights_fill_the_rest(tmp_path):
    a, b, c = (write_rendered(tmp_path, n, 20) for n in ("a", "b", "c"))
    spec = spec_for((a, {"count": 7}), (b, {"epochs": 1.5}), (c, {"weight": 1}), total=100)
    assert [t.quota for t in mix_datasets(spec, None, dry_run=True).tasks] == [7, 30, 63]


# ---------------------------------------------------------------- rows drawn


def test_oversampled_task_uses_full_passes_plus_a_seeded_remainder(tmp_path):
    small = write_rendered(tmp_path, "small", 10)
    result = mix_datasets(spec_for((small, {"count": 25})), tmp_path / "mix")
    used = Counter(artifact.open_split(tmp_path / "mix", "train")["source_index"].to_pylist())
    assert sorted(set(used.values())) == [2, 3]  # floor(25/10) or ceil(25/10) times each
    assert sum(1 for v in used.values() if v == 3) == 5
    assert result.tasks[0].times_used == (2, 3)
    assert result.tasks[0].repetition == 2.5


def test_undersampled_task_is_a_subset_without_repeats(tmp_path, two_tasks):
    alpha, _ = two_tasks
    mix_datasets(spec_for((alpha, {"count": 30})), tmp_path / "mix")
    rows = artifact.open_split(tmp_path / "mix", "train")["source_index"].to_pylist()
    assert len(rows) == len(set(rows)) == 30
    assert rows != sorted(rows)  # a seeded permutation, not the first rows


def _shard_bytes(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((path / "train").glob("*.arrow"))}


def test_same_spec_and_seed_give_identical_bytes(tmp_path, two_tasks):
    alpha, beta = two_tasks
    spec = spec_for((alpha, {"weight": 2}), (beta, {"weight": 1}), total=120, seed=7)
    for name in ("one", "two"):
        mix_datasets(spec, tmp_path / name, num_shards=2)
    assert _shard_bytes(tmp_path / "one") == _shard_bytes(tmp_path / "two")
    assert len(_shard_bytes(tmp_path / "one")) == 2
    one, two = (tmp_path / n / MANIFEST_NAME for n in ("one", "two"))
    assert one.read_bytes() == two.read_bytes()
    # the composition chart beside the manifest is part of the output, and as reproducible
    one, two = (tmp_path / n / "composition.png" for n in ("one", "two"))
    assert one.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert one.read_bytes() == two.read_bytes()


def test_epoch_and_seed_change_the_order_not_the_quotas(tmp_path, two_tasks):
    alpha, beta = two_tasks
    spec = spec_for((alpha, {"weight": 2}), (beta, {"weight": 1}), total=120)
    orders = {}
    for label, seed, epoch in (("base", 0, 0), ("epoch1", 0, 1), ("seed1", 1, 0)):
        run = spec_for((alpha, {"weight": 2}), (beta, {"weight": 1}), total=120, seed=seed)
        mix_datasets(run if seed else spec, tmp_path / label, epoch=epoch)
        train = artifact.open_split(tmp_path / label, "train")
        orders[label] = train["example_id"].to_pylist()
        assert Counter(train["task"].to_pylist()) == {"alpha": 80, "beta": 40}
    assert orders["base"] != orders["epoch1"] != orders["seed1"]
    assert read_manifest(tmp_path / "epoch1")["epoch"] == 1


def test_dry_run_writes_nothing(tmp_path, two_tasks):
    alpha, beta = two_tasks
    result = mix_datasets(spec_for((alpha, {}), (beta, {}), total=10), tmp_path / "x", dry_run=True)
    assert result.total == 10 and not (tmp_path / "x").exists()


# ---------------------------------------------------------------- hygiene


def test_exact_duplicates_are_removed_and_counted(tmp_path):
    alpha = write_rendered(tmp_path, "alpha", 20)
    first = artifact.open_split(alpha, "train").slice(0, 1)
    beta = tmp_path / "beta"
    with artifact.atomic_output_dir(beta) as tmp:
        same_prompt_other_completion = first.set_column(1, "completion", pa.array(["other"]))
        rows = [first, first, same_prompt_other_completion, _rows("beta", "train", ["b"] * 5)]
        artifact.write_split(tmp, "train", rows)
        artifact.write_dataset_dict(tmp, ["train"])
    result = mix_datasets(spec_for((alpha, {}), (beta, {"name": "beta"})), None, dry_run=True)
    # both copies of alpha's first row go; the same prompt with another completion stays
    assert [t.duplicates for t in result.tasks] == [0, 2]
    assert [t.available for t in result.tasks] == [20, 6]
    assert result.tasks[1].source_rows == 8


LEAKED = (
    "Amanda baked cookies for the whole office and promised to bring Jerry some of them "
    "tomorrow morning before the meeting starts"
)


def test_decontamination_reports_then_drops_overlapping_rows(tmp_path):
    alpha = write_rendered(tmp_path, "alpha", 30, texts=[f"Summarize: {LEAKED}"])
    beta = write_rendered(tmp_path, "beta", 30)
    with artifact.atomic_output_dir(tmp_path / "heldout") as tmp:
        artifact.write_split(tmp, "test", [_rows("heldout", "test", [LEAKED.upper()])])
        artifact.write_dataset_dict(tmp, ["test"])
    tasks = ((alpha, {}), (beta, {}))
    keys = {"total": 60, "eval_sets": [str(tmp_path / "heldout")]}
    report = mix_datasets(spec_for(*tasks, **keys), None, dry_run=True)
    assert [t.contaminated for t in report.tasks] == [1, 0]
    (pair,) = report.contamination["pairs"]
    assert pair["train_task"] == "alpha" and pair["train_rows"] == 1
    dropped = mix_datasets(spec_for(*tasks, decontaminate="drop", **keys), tmp_path / "mix")
    assert dropped.tasks[0].available == 29 and dropped.total == 60
    prompts = artifact.open_split(tmp_path / "mix", "train")["prompt"].to_pylist()
    assert not any(LEAKED in p for p in prompts)


# ---------------------------------------------------------------- errors


def test_a_directory_without_train_split_is_refused(tmp_path):
    with artifact.atomic_output_dir(tmp_path / "evalonly") as tmp:
        artifact.write_split(tmp, "test", [_rows("x", "test", ["a"])])
        artifact.write_dataset_dict(tmp, ["test"])
    with pytest.raises(MixError, match="no train split"):
        mix_datasets(spec_for((tmp_path / "evalonly", {})), tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("spec_text", "message"),
    [
        ("tasks: [{path: A, weight: 0}]", "'weight' in task 'A' must be greater than 0"),
        ("tasks: [{path: A, weight: -2}]", "must be greater than 0"),
        ("tasks: [{path: A, weight: 1, count: 5}]", "has both 'weight' and 'count'"),
        ("tasks: [{path: A}]\ntotal: 0", "'total' in the spec must be at least 1"),
        ("tasks: [{path: A, count: 1.0}]", "must be a whole number, got 1.0"),
        ("tasks: [{path: A, weigth: 1}]", "Unknown key 'weigth' in task #1"),
        ("tasks: [{path: A}]\nmix: 1", "Unknown key 'mix' in the spec"),
        ("tasks: [{path: A, name: x}, {path: B, name: x}]", "Two tasks are named 'x'"),
        ("tasks: [{path: A}]\nstrategy: temperature", "needs 'temperature: T'"),
        ("tasks: [{path: A, weight: 2}]\nstrategy: proportional", "has a 'weight'"),
        ("tasks: [{path: A}]\nunit: tokens", "needs a tokenizer"),
        ("tasks: [\n  - path: A", "is not valid YAML"),
        ("- just a list", "must be a YAML mapping"),
        ("tasks: [{path: A, count: '1.0'}]", "must be a whole number, got 1.0"),
        ("tasks: [{path: 5}]", "'path' in task #1 must be a string (a directory made by"),
        ("tasks: [{path: A, weight: .inf}]", "'weight' in task 'A' must be a finite number"),
        ("tasks: [{path: A, weight: .nan}]", "'weight' in task 'A' must be a finite number"),
        ("tasks: [{path: A, weight: 1e}]", "'weight' in task 'A' must be a number, got '1e'"),
        ("tasks: [{path: A, count: 100000000000000}]", "over the limit of 10,000,000,000"),
        ("tasks: [{path: A}]\ntotal: 100000000000000", "'total' in the spec is 100,000,"),
    ],
)
def test_bad_spec_is_a_one_line_error_and_writes_nothing(tmp_path, runner, spec_text, message):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(spec_text)
    result = runner.invoke(cli, ["mix", str(spec_file), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert message in result.output
    assert not (tmp_path / "out").exists()


def test_numbers_yaml_reads_as_strings_are_accepted():
    # YAML 1.1 (PyYAML) reads 1e-3 as a string; --task and train configs take it as a number
    spec = load_mix_spec(
        {"tasks": [{"path": "A", "weight": "1e-3"}, {"path": "B", "weight": 2}], "total": "10"}
    )
    assert (spec.tasks[0].weight, spec.total) == (0.001, 10)
    assert load_mix_spec({"tasks": [{"path": "A", "count": "7"}]}).tasks[0].count == 7


def test_missing_spec_and_non_dataset_directory(tmp_path, runner):
    result = runner.invoke(cli, ["mix", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "not found" in result.output
    (tmp_path / "plain").mkdir()
    result = runner.invoke(cli, ["mix", "--task", str(tmp_path / "plain"), "--out", "o"])
    assert result.exit_code == 1 and "is not an instructkit dataset" in result.output


def test_cli_mix_dry_run_prints_the_plan(tmp_path, runner, two_tasks):
    alpha, beta = two_tasks
    args = ["mix", "--task", f"{alpha}:weight=3", "--task", f"{beta}:weight=1", "--total", "40"]
    result = runner.invoke(cli, [*args, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "weight 3" in result.output and "dry run: nothing written" in result.output
    lines = {line.split()[0]: line.split() for line in result.output.splitlines() if line}
    assert lines["alpha"][8] == "30" and lines["beta"][8] == "10"  # "weight 3" is two words


def test_cli_mix_writes_and_refuses_to_overwrite(tmp_path, runner, two_tasks):
    alpha, beta = two_tasks
    out = tmp_path / "out"
    args = ["mix", "--task", f"{alpha}:count=5", "--task", f"{beta}:count=5", "-o", str(out), "-q"]
    assert runner.invoke(cli, args).exit_code == 0
    again = runner.invoke(cli, args)
    assert again.exit_code == 1 and "--overwrite" in again.output
    printed = runner.invoke(cli, [*args, "--overwrite", "--json"])
    assert printed.exit_code == 0
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert json.loads(printed.output) == manifest
    assert manifest["command"]["name"] == "mix"


def test_bad_task_option_is_a_bad_parameter(runner):
    result = runner.invoke(cli, ["mix", "--task", "a:size=3", "--dry-run"])
    assert result.exit_code == 2 and "Bad task option 'size=3'" in result.output


@pytest.mark.parametrize("suffix", ["weight", "count,name=x", "wieght"])
def test_task_option_without_a_value_says_key_value(runner, tmp_path, suffix):
    (tmp_path / "summary").mkdir()
    text = f"{tmp_path / 'summary'}:{suffix}"
    result = runner.invoke(cli, ["mix", "--task", text, "--dry-run"])
    assert result.exit_code == 2, result.output
    assert "use KEY=VALUE with KEY one of" in result.output
    assert "does not exist" not in result.output


def test_tokens_unit_balances_tokens_not_rows(tmp_path):
    from instructkit.tiny import train_tokenizer

    short = write_rendered(tmp_path, "short", 40)
    long_texts = [f"Summarize {' '.join(['word'] * 40)} number {i}" for i in range(40)]
    long = write_rendered(tmp_path, "long", 40, texts=long_texts)
    tokenizer = train_tokenizer(long_texts + ["Summarize short train dialogue"], vocab_size=300)
    tokenizer.save_pretrained(tmp_path / "tok")
    spec = spec_for(
        (short, {}), (long, {}), total=40, unit="tokens", tokenizer=str(tmp_path / "tok")
    )
    spec = load_mix_spec({**spec.to_json(), "total": 2000})
    result = mix_datasets(spec, None, dry_run=True)
    short_plan, long_plan = result.tasks
    assert short_plan.quota > long_plan.quota  # equal token shares need more short rows
    assert short_plan.tokens is not None and long_plan.tokens is not None
    assert abs(short_plan.tokens - long_plan.tokens) < 0.1 * (short_plan.tokens + long_plan.tokens)


# ---------------------------------------------------------------- real data


def _render_like(jsonl: Path, out: Path, task: str, dialogue: str, summary: str) -> None:
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    prompts = [f"Summarize the dialogue.\n{r[dialogue]}" for r in rows]
    table = _rows(task, "train", prompts)
    table = table.set_column(1, "completion", pa.array([r[summary] for r in rows]))
    artifact.write_split(out, "train", [table])


@pytest.mark.shared_data
def test_real_samsum_and_dialogsum_weights_3_to_1(tmp_path, shared_data_dir):
    paths = []
    for task, file, summary in (
        ("samsum", "samsum/train.jsonl", "summary"),
        ("dialogsum", "dialogsum/dialogsum.train.jsonl", "summary"),
    ):
        with artifact.atomic_output_dir(tmp_path / task) as tmp:
            _render_like(shared_data_dir / file, tmp, task, "dialogue", summary)
            artifact.write_dataset_dict(tmp, ["train"])
            write_manifest(tmp, {"task": task})
        paths.append(tmp_path / task)
    spec = spec_for((paths[0], {"weight": 3}), (paths[1], {"weight": 1}), total=20000)
    spec = load_mix_spec({**spec.to_json(), "decontaminate": "off"})
    result = mix_datasets(spec, tmp_path / "mix")
    train = artifact.open_split(tmp_path / "mix", "train")["task"].to_pylist()
    assert Counter(train) == {"samsum": 15000, "dialogsum": 5000}
    assert_prefixes_within_one(train, {"samsum": 15000, "dialogsum": 5000})
    assert result.tasks[0].times_used == (1, 2)  # 15000 rows from fewer than 15000 examples


def test_large_tasks_count_tokens_on_a_fixed_sample(tmp_path, monkeypatch):
    """Past TOKEN_SAMPLE_ROWS rows a task's mean tokens per row comes from a fixed sample: the
    tokenizer sees only that many rows, and seed and epoch still never move the quotas."""
    from instructkit.mix import run as mix_run

    monkeypatch.setattr(mix_run, "TOKEN_SAMPLE_ROWS", 16)
    short = write_rendered(tmp_path, "short", 12)  # counted whole
    long_texts = [f"Summarize {' '.join(['word'] * (20 + i % 9))} {i}" for i in range(60)]
    long = write_rendered(tmp_path, "long", 60, texts=long_texts)
    seen: list[str] = []

    def count(texts: list[str]) -> list[int]:
        seen.extend(texts)
        return [len(t.split()) for t in texts]

    def plan(seed: int, epoch: int) -> mix_run.MixResult:
        spec = spec_for((short, {}), (long, {}), unit="tokens", tokenizer="words", seed=seed)
        spec = load_mix_spec({**spec.to_json(), "total": 3000})
        return mix_datasets(spec, None, dry_run=True, epoch=epoch, count_tokens=count)

    seen.clear()
    first = plan(1, 0)
    assert len(seen) == 12 + 16  # the whole short task, a 16-row sample of the long one
    short_plan, long_plan = first.tasks
    assert short_plan.tokens_sampled_rows is None and long_plan.tokens_sampled_rows == 16
    sampled = [t for t in seen if t.startswith("Summarize word")]
    mean = sum(len(t.split()) for t in sampled) / len(sampled)
    assert long_plan.tokens == round(long_plan.quota * mean)
    assert "~" in mix_run.format_plan(first)  # an estimate is marked as one
    for seed, epoch in ((2, 0), (1, 3)):
        seen.clear()
        again = plan(seed, epoch)
        assert [t.quota for t in again.tasks] == [t.quota for t in first.tasks]
        assert [t.tokens for t in again.tasks] == [t.tokens for t in first.tasks]

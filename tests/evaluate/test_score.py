"""`instructkit score`: predictions files with no model, against several reference sources."""

from __future__ import annotations

import json

import pytest
from rouge_score import rouge_scorer

from instructkit.cli import cli

PREDICTIONS = ["Tom meets Jerry at noon.", "They plan a dinner.", "Anna calls Bob."]
REFERENCES = [
    ["Jerry and Tom meet at noon.", "Tom will see Jerry."],
    ["A dinner is planned.", "They talk about food."],
    ["Bob gets a call from Anna.", "Anna phones Bob about the party."],
]


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.fixture
def text_predictions(tmp_path):
    return write_lines(tmp_path / "preds.txt", PREDICTIONS)


@pytest.fixture
def jsonl_references(tmp_path):
    records = [{"id": i, "summary1": a, "summary2": b} for i, (a, b) in enumerate(REFERENCES)]
    return write_lines(tmp_path / "refs.jsonl", [json.dumps(r) for r in records])


def score_json(runner, *args):
    result = runner.invoke(cli, ["score", *map(str, args), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_text_predictions_with_jsonl_reference_fields(runner, text_predictions, jsonl_references):
    data = score_json(
        runner, text_predictions, "-r", jsonl_references, "--reference-fields", "summary1,summary2"
    )
    assert list(data["multi_ref"]) == ["max", "mean", "first"]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rows = list(zip(PREDICTIONS, REFERENCES, strict=True))
    expected = {
        "max": [max(scorer.score(r, p)["rougeL"].fmeasure for r in rs) for p, rs in rows],
        "first": [scorer.score(rs[0], p)["rougeL"].fmeasure for p, rs in rows],
    }
    for mode, values in expected.items():
        got = data["multi_ref"][mode]["tasks"]["all"]["metrics"]["rouge"]["scores"]["rougeL"]
        assert got["value"] == pytest.approx(100 * sum(values) / len(values))


def test_table_prints_every_rouge_key_per_mode(runner, text_predictions, jsonl_references):
    args = ["score", str(text_predictions), "-r", str(jsonl_references)]
    result = runner.invoke(cli, [*args, "--reference-fields", "summary1,summary2"])
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()[1:]
    assert header.split() == [
        "task",
        "multi-ref",
        "rows",
        "rouge1",
        "rouge2",
        "rougeL",
        "rougeLsum",
    ]
    assert [row.split()[1] for row in rows] == ["max", "mean", "first"]


def test_text_reference_files_add_one_reference_each(runner, tmp_path, text_predictions):
    first = write_lines(tmp_path / "r1.txt", [r[0] for r in REFERENCES])
    second = write_lines(tmp_path / "r2.txt", [r[1] for r in REFERENCES])
    both = score_json(runner, text_predictions, "-r", first, "-r", second, "--multi-ref", "max")
    records = [{"summary1": a, "summary2": b} for a, b in REFERENCES]
    as_jsonl = write_lines(tmp_path / "refs.jsonl", [json.dumps(r) for r in records])
    fields = score_json(
        runner, text_predictions, "-r", as_jsonl, "--reference-fields", "summary1,summary2",
        "--multi-ref", "max",
    )  # fmt: skip
    assert both["multi_ref"] == fields["multi_ref"]


def test_single_reference_reports_one_mode(runner, tmp_path, text_predictions):
    refs = write_lines(tmp_path / "r1.txt", [r[0] for r in REFERENCES])
    data = score_json(runner, text_predictions, "-r", refs)
    assert list(data["multi_ref"]) == ["max"]


def test_jsonl_predictions_are_scored_per_task(runner, tmp_path):
    records = [
        {"task": "summary", "prediction": p, "references": r}
        for p, r in zip(PREDICTIONS, REFERENCES, strict=True)
    ] + [{"task": "topic", "prediction": "office", "references": ["Office"]}]
    path = write_lines(tmp_path / "p.jsonl", [json.dumps(r) for r in records])
    data = score_json(runner, path, "--metric", "exact_match", "--metric", "rouge")
    report = data["multi_ref"]["max"]
    assert set(report["tasks"]) == {"summary", "topic"}
    assert (
        report["tasks"]["topic"]["metrics"]["exact_match"]["scores"]["exact_match"]["value"] == 100
    )
    assert report["overall"]["num_rows"] == 4


def test_num_proc_output_is_identical(runner, tmp_path):
    preds = write_lines(tmp_path / "p.txt", PREDICTIONS * 10)
    refs = write_lines(tmp_path / "r.txt", [r[0] for r in REFERENCES] * 10)
    one = runner.invoke(cli, ["score", str(preds), "-r", str(refs), "--json"])
    two = runner.invoke(cli, ["score", str(preds), "-r", str(refs), "--json", "--num-proc", "2"])
    assert one.exit_code == two.exit_code == 0
    assert one.output == two.output


def test_out_writes_the_json(runner, tmp_path, text_predictions, jsonl_references):
    out = tmp_path / "scores.json"
    args = [str(text_predictions), "-r", str(jsonl_references), "--reference-fields", "summary1"]
    result = runner.invoke(cli, ["score", *args, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == json.loads(result.output)


def test_out_under_a_file_is_one_line(runner, tmp_path, text_predictions, jsonl_references):
    (tmp_path / "ff").write_text("x")
    out = tmp_path / "ff" / "x.json"
    args = [str(text_predictions), "-r", str(jsonl_references), "--reference-fields", "summary1"]
    result = runner.invoke(cli, ["score", *args, "--out", str(out)])
    assert result.exit_code == 1
    assert result.output == f"Error: Cannot write '{out}': '{tmp_path / 'ff'}' is a file.\n"
    out = tmp_path / "new" / "x.json"
    assert runner.invoke(cli, ["score", *args, "--out", str(out)]).exit_code == 0
    assert out.is_file()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("short", "'{preds}' has 3 predictions but the references have 2 rows"),
        ("empty", "Predictions file '{preds}' is empty"),
        ("metric", "Unknown metric 'bleu': known metrics are contains, exact_match, rouge"),
        ("field", "Line 1 of '{refs}' has no summary9 field"),
        ("no-refs", "Prediction 1 of '{preds}' has no references: pass --references FILE."),
    ],
)
def test_bad_input_is_one_line_exit_1(runner, tmp_path, setup, message):
    preds = write_lines(tmp_path / "p.txt", PREDICTIONS if setup != "empty" else [""])
    count = 2 if setup == "short" else 3
    refs = write_lines(tmp_path / "r.jsonl", [json.dumps({"s": "x"})] * count)
    args = ["score", str(preds)]
    if setup != "no-refs":
        args += ["-r", str(refs), "--reference-fields", "summary9" if setup == "field" else "s"]
    if setup == "metric":
        args += ["--metric", "bleu"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 1
    assert result.output.startswith("Error: " + message.format(preds=preds, refs=refs))
    assert len(result.output.splitlines()) == 1


@pytest.mark.shared_data
def test_dialogsum_official_file_with_three_summaries(runner, tmp_path, shared_data_dir):
    official = shared_data_dir / "dialogsum" / "dialogsum.test.jsonl"
    records = [json.loads(line) for line in official.read_text().splitlines()]
    # a few topics hold a newline; one prediction per line means one line each
    topics = [" ".join(r["topic1"].split()) for r in records]
    preds = write_lines(tmp_path / "preds.txt", topics)
    args = ["score", str(preds), "--references", str(official)]
    result = runner.invoke(cli, [*args, "--reference-fields", "summary1,summary2,summary3"])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()[2:]]
    assert [row[1] for row in rows] == ["max", "mean", "first"]
    assert {row[2] for row in rows} == {str(len(records))}
    max_r1, mean_r1 = float(rows[0][3]), float(rows[1][3])
    assert max_r1 > mean_r1 > 0


@pytest.mark.parametrize("value", [0, None, 3.5, ["a"]])
def test_prediction_that_is_not_text_names_its_line(runner, tmp_path, value):
    records = [{"prediction": "a", "references": ["a"]}, {"prediction": value, "references": ["0"]}]
    path = write_lines(tmp_path / "p.jsonl", ["", *[json.dumps(r) for r in records]])
    result = runner.invoke(cli, ["score", str(path)])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: Line 3 of '{path}': 'prediction' must be a string, got {json.dumps(value)}; "
        'write the text in quotes ("" if empty).\n'
    )


def test_trailing_blank_lines_of_a_text_file_are_not_predictions(runner, tmp_path):
    preds = write_lines(tmp_path / "p.txt", [*PREDICTIONS, "", "  "])
    refs = write_lines(tmp_path / "r.txt", [r[0] for r in REFERENCES])
    data = score_json(runner, preds, "-r", refs)
    assert data["multi_ref"]["max"]["overall"]["num_rows"] == 3

"""Sweep records: round trip, and the loader names the line and field of a malformed row."""

import json

import pytest

from tune.records import RecordsError, SweepRecord, load_records, write_records


def record(**over) -> dict:
    row = {
        "version": 1, "sweep": "s", "trial_id": "t1",
        "task": {"name": "arith-qa", "type": "arithmetic", "domain": "arithmetic", "metric": "exact_match",
                 "complexity": 4, "capabilities": ["arithmetic"], "description": "sums"},
        "pool": [{"name": n, "family": "llama", "domain": "prose", "tokenizer": "bpe", "vocab_size": 512,
                  "hidden": 32, "layers": 2, "parameters": 50000, "train_steps": 150} for n in ("a", "b")],
        "config": {"members": ["a", "b"], "anchor": "a", "strategy": "router", "fusion_points": 1,
                   "placement": "late", "fusion_layers": [1], "fusion_dim": 8, "lr": 0.001, "steps": 10,
                   "temperature": 0.0},
        "metrics": {"score": 0.5, "exact_match": 0.25},
        "cost": {"trained_params": 100, "decode_ms": 3.0, "memory_mb": 0.4},
        "iterations": 2, "steps_trained": 10, "stopped_early": False,
    }  # fmt: skip
    row.update(over)
    return row


def test_round_trip(tmp_path):
    path = write_records(
        [SweepRecord.model_validate(record()), SweepRecord.model_validate(record(trial_id="t2"))],
        tmp_path / "r.jsonl",
    )
    assert [r.trial_id for r in load_records(path)] == ["t1", "t2"]


@pytest.mark.parametrize(
    "row, message",
    [
        ("{not json", ":2: not JSON"),
        (json.dumps(record(version=2)), "records version 2, expected 1"),
        (json.dumps({k: v for k, v in record().items() if k != "cost"}), "field 'cost': Field required"),
        (json.dumps(record(metrics={"score": 0.5})), "metrics lack \\['exact_match'\\]"),
        (json.dumps(record(config={**record()["config"], "members": ["a", "z"]})), "anchor|not in the pool"),
        (
            json.dumps(record(cost={"trained_params": 1, "decode_ms": -1, "memory_mb": 1})),
            "field 'cost.decode_ms'",
        ),
        (json.dumps(record(task={**record()["task"], "type": "poetry"})), "field 'task.type'"),
    ],
)
def test_malformed_rows_are_rejected_with_line_and_field(tmp_path, row, message):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(record()) + "\n" + row + "\n")
    with pytest.raises(RecordsError, match=message) as err:
        load_records(path)
    assert ":2:" in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(RecordsError, match="no records file"):
        load_records(tmp_path / "none.jsonl")


def test_best_table_fits_100_columns_without_cutting_a_cell():
    import io

    from rich.console import Console

    from tune.report import best_table

    console = Console(width=100, record=True, file=io.StringIO())
    console.print(best_table([SweepRecord.model_validate(record())]))
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 100

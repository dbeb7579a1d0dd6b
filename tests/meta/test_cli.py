"""braid meta train|decide|explain on a small records file."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cli import app
from tests.tune.test_records import record

runner = CliRunner()


def records_file(tmp_path):
    rows = []
    for i, (anchor, strategy, score) in enumerate([("a", "router", 0.9), ("b", "router", 0.2),
                                                     ("a", "attention", 0.5), ("b", "attention", 0.1)]):  # fmt: skip
        row = record(trial_id=f"t{i}", metrics={"score": score, "exact_match": score})
        row["config"] |= {"anchor": anchor, "strategy": strategy, "steps": 20}
        rows.append(json.dumps(row))
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_train_then_decide_and_explain(tmp_path):
    agent = tmp_path / "meta.pt"
    out = runner.invoke(app, ["meta", "train", "--records", str(records_file(tmp_path)), "--out", str(agent),
                              "--steps", "60"])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "4 of 4 records used" in out.output and agent.exists()
    out = runner.invoke(app, ["meta", "decide", "--type", "arithmetic", "--agent", str(agent)])
    assert out.exit_code == 0, out.output
    assert "anchor" in out.output and "strategy" in out.output
    out = runner.invoke(app, ["meta", "explain", "--type", "arithmetic", "--agent", str(agent)])
    assert out.exit_code == 0 and "policy confidence" in out.output, out.output


def test_bad_input_is_named(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"version": 1, "sweep": 3}\n')
    out = runner.invoke(app, ["meta", "train", "--records", str(bad), "--out", str(tmp_path / "m.pt")])
    assert out.exit_code == 2 and "bad.jsonl:1" in out.output
    out = runner.invoke(app, ["meta", "decide", "--type", "x", "--agent", str(tmp_path / "none.pt")])
    assert out.exit_code == 2 and "no agent at" in out.output

"""The dashboard's JSON: the Pareto front and best configuration per task type from sweep records, and
choices and feedback per task type from the response log."""

from __future__ import annotations

import random

from serve.dashboard import Dashboard, pareto
from serve.responses import ResponseLog
from tests.serve.test_web import sweep_records


def test_pareto_keeps_exactly_the_points_nothing_beats_on_both_axes():
    rng = random.Random(0)
    points = [{"score": rng.uniform(-5, 0), "decode_ms": rng.uniform(1, 20)} for _ in range(200)]
    front = pareto(points)

    def dominated(p):
        return any(q["score"] >= p["score"] and q["decode_ms"] <= p["decode_ms"] and q is not p and
                   (q["score"], q["decode_ms"]) != (p["score"], p["decode_ms"]) for q in points)  # fmt: skip

    assert {id(p) for p in front} == {id(p) for p in points if not dominated(p)}
    assert [p["decode_ms"] for p in front] == sorted(p["decode_ms"] for p in front)


def test_sweeps_per_task_type(meta_checkpoint, tmp_path):
    path = sweep_records(meta_checkpoint, tmp_path / "records.jsonl", n=8)
    out = Dashboard(path).sweeps()
    (kind,) = out["types"]
    points = out["types"][kind]["points"]
    assert kind == "arithmetic" and out["count"] == len(points) == 8
    assert out["types"][kind]["best"]["score"] == max(p["score"] for p in points)
    assert {p["key"] for p in points if p["pareto"]} == set(out["types"][kind]["front"])
    assert Dashboard(None).sweeps() == {"records": None, "count": 0, "types": {}}


def test_decisions_count_choices_and_feedback_in_time_order(tmp_path):
    log = ResponseLog(tmp_path / "responses.sqlite")
    rows = [("r1", "a|a,b|calm|1|late|8", "arithmetic"), ("r2", "a|a,b|calm|1|late|8", "arithmetic"),
            ("r3", "b|a,b|pointer|1|late|8", "fact_recall"), ("r4", "pinned-braid", None)]  # fmt: skip
    for rid, model, kind in rows:
        task = {"type": kind} if kind else None
        log.add(
            rid, model=model, query="q", answer="a", task=task, decision={"anchor": "a"} if kind else None
        )
    log.add_feedback("r3", 1.0)
    log.add_feedback("r1", -1.0)
    out = Dashboard(None, log).decisions()
    assert out["by_type"] == {"arithmetic": {"a|a,b|calm|1|late|8": 2}, "fact_recall": {"b|a,b|pointer|1|late|8": 1},
                              "pinned": {"pinned-braid": 1}}  # fmt: skip
    assert [f["rating"] for f in out["feedback"]] == [1.0, -1.0]  # r3 was rated first
    assert [r["id"] for r in out["recent"]] == ["r4", "r3", "r2", "r1"]

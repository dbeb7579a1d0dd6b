import pytest

from tests.bench.conftest import run_smoke


@pytest.mark.slow
def test_meta_bench_smoke():
    out = run_smoke("bench/meta.py")
    assert "| meta-braider |" in out and "| kNN |" in out
    assert (
        "Decision latency" in out
        and "Constraints as the seed states them (" in out
        and "A raw score floor" in out
    )
    assert "| multi-agent: quality-, latency- and cost-first proposers, arbiter |" in out
    assert "seed-form violations, by the limit missed" in out or "No seed-form request was violated." in out
    assert "Multi-agent (`meta.arbiter`" in out and "for the single agent; on the same" in out


def test_miss_breakdown_counts_each_limit_the_seed_form_violations_missed(monkeypatch):
    import bench.meta as bench_meta

    misses = [("accuracy_target", ("score",)), ("none", ("latency",)),
              ("accuracy_target", ("latency", "score")), ("min_score", ("score",))]  # fmt: skip
    monkeypatch.setattr(bench_meta, "MISSES", misses)
    assert bench_meta.miss_breakdown() == (
        "The 3 seed-form violations, by the limit missed: accuracy_target requests missing latency: 1, "
        "accuracy_target requests missing score: 2, none requests missing latency: 1."
    )

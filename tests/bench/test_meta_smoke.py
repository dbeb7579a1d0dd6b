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
    assert "Ceilings (the same seed-form draws" in out and "told both: met" in out
    assert "Measuring before answering (`meta.probe.Probe`" in out and "decode timings, of the" in out


def test_miss_breakdown_counts_each_limit_the_seed_form_violations_missed():
    from bench.meta_constraints import miss_breakdown

    misses = [("accuracy_target", ("score",)), ("none", ("latency",)),
              ("accuracy_target", ("latency", "score")), ("min_score", ("score",))]  # fmt: skip
    assert miss_breakdown(misses) == (
        "The 3 seed-form violations, by the limit missed: accuracy_target requests missing latency: 1, "
        "accuracy_target requests missing score: 2, none requests missing latency: 1."
    )
    assert miss_breakdown([("min_score", ("score",))]) == "No seed-form request was violated."


@pytest.mark.slow
def test_records_are_measured_by_workers_kept_per_config_and_timed_one_at_a_time(
    tiny_zoo, tmp_path, monkeypatch
):
    """Two worker processes measure the records; each config's records are kept as it finishes, so a run
    whose records file is gone resumes from them without training again, and re-times every record."""
    import bench.meta as bench_meta
    from braid.zoo.build import load_cards
    from tune.records import ModelFeatures

    cache, zoo = tiny_zoo
    pool = [ModelFeatures.from_card(c) for c in load_cards(tiny=True, cache_dir=cache)]
    specs = bench_meta.tasks(smoke=True)[:1]
    path = tmp_path / "records.jsonl"
    first = bench_meta.measure_all(zoo, pool, specs, 1, path, workers=2)  # the worker pool, one config
    assert [r.trial_id for r in first] == [f"c0@{specs[0].name}"]
    assert len(list((tmp_path / "records.parts").glob("c*-k*.jsonl"))) == 1
    assert all(r.cost.decode_ms > 0 for r in first)

    def trains(*_):
        raise AssertionError("a kept config was trained again")

    path.unlink()
    monkeypatch.setattr(bench_meta, "measure_config", trains)
    again = bench_meta.measure_all(zoo, pool, specs, 1, path, workers=1)
    assert [(r.trial_id, r.metrics, r.config) for r in again] == [
        (r.trial_id, r.metrics, r.config) for r in first
    ]
    assert all(r.cost.decode_ms > 0 for r in again) and path.exists()

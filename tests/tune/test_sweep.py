"""Sweeps on a local Ray cluster (num_cpus=2) over the tiny zoo."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tune.records import load_records
from tune.report import best_table, config_differences, pareto_front, pareto_plot
from tune.space import BraidChoice, SearchSpace
from tune.sweep import SweepConfig, run_sweep
from tune.tasks import TaskSpec, TaskSuite
from tune.trainable import build_braid, measure_cost, run_trial

ROOT = Path(__file__).resolve().parents[2]
PROSE = TaskSpec(name="prose-lm", type="language_modeling", n_train=16, n_eval=4)
ARITH = TaskSpec(name="arith-qa", type="arithmetic", n_train=16, n_eval=4)
CFG = dict(braid="prose-llama|code-qwen2,prose-llama", fusion_points=1, placement="late", strategy="router",
           fusion_dim=8, lr=3e-3, steps=10, temperature=0.0)  # fmt: skip


def test_trial_reports_checkpoints_and_resumes(zoo_and_pool, tmp_path):
    zoo, _ = zoo_and_pool
    reports = []

    def keep(metrics, ckpt):
        target = tmp_path / f"ckpt{metrics['steps_trained']}"
        target.mkdir()
        for f in ckpt.iterdir():
            (target / f.name).write_bytes(f.read_bytes())
        reports.append(metrics)

    run_trial(CFG, PROSE, zoo, keep, eval_every=5)
    assert [r["steps_trained"] for r in reports] == [5, 10]
    assert {"score", "char_perplexity", "decode_ms", "trained_params", "memory_mb"} <= set(reports[0])
    resumed = []
    run_trial(CFG, PROSE, zoo, lambda m, c: resumed.append(m), eval_every=5, resume_from=tmp_path / "ckpt5")
    assert [r["steps_trained"] for r in resumed] == [10]
    assert json.loads((tmp_path / "ckpt5" / "state.json").read_text()) == {"step": 5}


def test_trials_in_one_process_can_share_members_and_score_the_same(zoo_and_pool):
    """bench/meta.py and the meta-braider's episodes run trials one after another: with shared members a
    cross-tokenizer member's bridge reads each text once, and the trial's result does not change."""
    zoo, _ = zoo_and_pool
    cfg = {**CFG, "braid": "arith-gpt2|arith-gpt2,prose-llama", "strategy": "output_router", "steps": 4}
    runs = {}
    for shared in (False, True, True):
        reports: list[dict] = []
        run_trial(
            cfg, ARITH, zoo, lambda m, _, out=reports: out.append(m), eval_every=4, shared_members=shared
        )
        runs.setdefault(shared, []).append(reports[-1]["score"])
    assert runs[False][0] == runs[True][0] == runs[True][1]
    first, again = (build_braid(BraidChoice.from_trial(cfg, 2), zoo, shared_members=True) for _ in range(2))
    assert all(a is b for a, b in zip(first.models, again.models, strict=True))
    assert build_braid(BraidChoice.from_trial(cfg, 2), zoo).models[0] is not first.models[0]


def test_measure_cost_times_decode_steps_only(zoo_and_pool, monkeypatch):
    from braid.generation import BraidSession

    zoo, _ = zoo_and_pool
    braided = build_braid(BraidChoice.from_trial(CFG, 2), zoo)
    fed = []
    feed = BraidSession.feed
    monkeypatch.setattr(BraidSession, "feed", lambda self, ids: fed.append(ids.shape[1]) or feed(self, ids))
    cost = measure_cost(braided, "x" * 500, new_tokens=4, rounds=3)
    # each round: one prefill of the prompt cut to 200 chars, then 4 single-token steps whatever the tokens are
    assert fed.count(1) == 12 and len(fed) == 15 and max(fed) > 1
    assert cost.decode_ms > 0 and cost.trained_params == braided.num_fusion_parameters() > 0


@pytest.mark.integration
@pytest.mark.slow
def test_smoke_sweep_writes_valid_records(ray_local, zoo_and_pool, tmp_path, capfd):
    zoo, pool = zoo_and_pool
    space = SearchSpace(steps=(10, 20), fusion_dims=(8, 16))
    cfg = SweepConfig(name="smoke", num_samples=3, eval_every=5, storage_path=str(tmp_path), verbose=0)
    records, path = run_sweep(TaskSuite(tasks=[PROSE, ARITH]), space, cfg, zoo, pool)
    err = capfd.readouterr().err  # one progress bar per task, each run to its trial count
    assert "sweep prose-lm" in err and "sweep arith-qa" in err and err.count("3/3") >= 2
    loaded = load_records(path)
    assert len(loaded) == len(records) == 6
    assert {r.task.name for r in loaded} == {"prose-lm", "arith-qa"}
    assert all(len(r.pool) == 4 and r.cost.decode_ms > 0 and r.cost.trained_params > 0 for r in loaded)
    assert pareto_plot(loaded, tmp_path / "pareto.png").stat().st_size > 1000
    assert best_table(loaded).row_count == 2 and pareto_front(loaded[:3])
    assert set(config_differences(loaded)) == {"anchor", "members", "strategy", "fusion_layers", "fusion_dim"}


@pytest.mark.integration
@pytest.mark.slow
def test_asha_stops_weak_trials_early(ray_local, zoo_and_pool, tmp_path):
    """Sequential trials: a strong config first, then one whose anchor cannot write prose (the score floor).
    ASHA must stop the weak one at its first rung; the strong one trains its whole budget."""
    zoo, pool = zoo_and_pool
    strong = {**CFG, "steps": 20}
    weak = {**strong, "braid": "arith-gpt2|arith-gpt2,prose-llama"}
    space = SearchSpace(steps=(20,), fusion_dims=(8,), strategies=("router",))
    cfg = SweepConfig(name="asha", num_samples=2, eval_every=5, storage_path=str(tmp_path), search="random",
                      max_concurrent_trials=1, points_to_evaluate=(strong, weak))  # fmt: skip
    records, _ = run_sweep(TaskSuite(tasks=[PROSE]), space, cfg, zoo, pool)
    by_anchor = {r.config.anchor: r for r in records}
    assert by_anchor["prose-llama"].iterations == 4 and not by_anchor["prose-llama"].stopped_early
    assert by_anchor["arith-gpt2"].iterations < 4 and by_anchor["arith-gpt2"].stopped_early


@pytest.mark.integration
@pytest.mark.slow
def test_interrupted_sweep_resumes(tiny_zoo, tmp_path):
    cache, _ = tiny_zoo
    cmd = [sys.executable, str(ROOT / "tests/tune/sweep_driver.py"), str(cache), str(tmp_path), "3"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    experiment = tmp_path / "resume-prose-lm"
    deadline = time.monotonic() + 240
    while not list(experiment.glob("*/checkpoint_*")):  # the first trial has reported
        assert time.monotonic() < deadline and first.poll() is None, first.stdout.read()
        time.sleep(0.5)
    first.send_signal(signal.SIGINT)  # Tune saves the experiment state and stops
    out, _ = first.communicate(timeout=120)
    assert "RECORDS" not in out and "/3 trials finished" in out, out[-3000:]
    started = {p.name for p in experiment.iterdir() if p.is_dir()}
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert "RECORDS 3" in second.stdout, second.stdout[-3000:] + second.stderr[-3000:]
    trials = {p.name for p in experiment.iterdir() if p.is_dir()}
    assert started <= trials and len(trials) == 3  # the interrupted trials continued, no duplicates
    records = load_records(tmp_path / "resume.records.jsonl")
    assert len(records) == 3 and all(r.steps_trained == 40 for r in records)
